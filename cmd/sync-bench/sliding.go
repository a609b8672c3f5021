package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"time"

	"maunium.net/go/mautrix"
)

// part 4 -------------------------------------------------------------------
//
// /sync v3 against sliding sync (MSC4186) for a user in many rooms: the
// bytes and time of an initial GET /sync, and of the first sliding sync
// response with a 20-room window as Element X asks for it (targets:
// sliding sync under 50 ms and under 10 % of the v3 bytes).

// elementXRequest is the first request of Element X's room list (the
// matrix-rust-sdk room list service's list, with the encryption
// connection's extensions folded in).
const elementXRequest = `{
 "conn_id": "room-list",
 "lists": {"all_rooms": {
  "ranges": [[0, 19]],
  "timeline_limit": 1,
  "required_state": [
   ["m.room.encryption", ""], ["m.room.member", "$LAZY"], ["m.room.member", "$ME"], ["m.room.name", ""],
   ["m.room.topic", ""], ["m.room.avatar", ""], ["m.room.canonical_alias", ""], ["m.room.power_levels", ""],
   ["m.room.join_rules", ""], ["m.room.pinned_events", ""], ["m.room.create", ""], ["m.room.history_visibility", ""],
   ["m.room.tombstone", ""], ["m.call.member", "*"], ["m.space.parent", "*"]
  ],
  "filters": {"not_room_types": ["m.space"]}
 }},
 "extensions": {
  "to_device": {"enabled": true}, "e2ee": {"enabled": true}, "account_data": {"enabled": true},
  "receipts": {"enabled": true, "rooms": ["*"]}, "typing": {"enabled": true}
 }
}`

const slidingPath = "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync"

func slidingVsV3(nRooms, nEvents, runs int) error {
	p, err := populate(nRooms, nEvents)
	if err != nil {
		return err
	}
	defer p.close()
	b, reader := p.b, p.reader
	fmt.Printf("4. /sync v3 against sliding sync: a user in %d rooms of %d messages each (made in %v)\n",
		nRooms, nEvents, p.made.Round(time.Millisecond))
	c := newHTTPClient()
	v3 := func() (int, error) {
		body, err := call(c, http.MethodGet, syncURL(b.url, "", 0), reader.token, nil)
		if err != nil {
			return 0, err
		}
		var resp mautrix.RespSync
		if err := json.Unmarshal(body, &resp); err != nil {
			return 0, err
		}
		if len(resp.Rooms.Join) != nRooms {
			return 0, fmt.Errorf("v3 initial sync has %d rooms, want %d", len(resp.Rooms.Join), nRooms)
		}
		return len(body), nil
	}
	sliding := func() (int, error) {
		body, err := call(c, http.MethodPost, b.url+slidingPath, reader.token, []byte(elementXRequest))
		if err != nil {
			return 0, err
		}
		var resp struct {
			Lists map[string]struct{ Count int } `json:"lists"`
			Rooms map[string]json.RawMessage     `json:"rooms"`
		}
		if err := json.Unmarshal(body, &resp); err != nil {
			return 0, err
		}
		if len(resp.Rooms) != min(20, nRooms) || resp.Lists["all_rooms"].Count != nRooms {
			return 0, fmt.Errorf("sliding sync sent %d rooms of a list of %d", len(resp.Rooms), resp.Lists["all_rooms"].Count)
		}
		return len(body), nil
	}
	type result struct {
		name     string
		size     int
		coldTime time.Duration
		warm     []time.Duration
	}
	var results []*result
	// Sliding sync goes first after the restart, so its cold figure is
	// not helped by caches v3 filled.
	for _, m := range []struct {
		name string
		fn   func() (int, error)
	}{{"sliding sync, 20-room window", sliding}, {"GET /sync v3, no filter", v3}} {
		r := &result{name: m.name}
		for i := range runs + 1 {
			t0 := time.Now()
			size, err := m.fn()
			if err != nil {
				return err
			}
			took := time.Since(t0)
			if i == 0 {
				r.size, r.coldTime = size, took
				continue
			}
			r.warm = append(r.warm, took)
		}
		slices.Sort(r.warm)
		results = append(results, r)
	}
	for _, r := range results {
		fmt.Printf("   %-30s %7d KiB  cold %v  warm median %v (min %v, max %v, %d runs)\n", r.name, r.size/1024,
			ms(r.coldTime), ms(pct(r.warm, 0.5)), ms(r.warm[0]), ms(r.warm[len(r.warm)-1]), len(r.warm))
	}
	s, v := results[0], results[1]
	fmt.Printf("   sliding sync: %.1f %% of the v3 bytes (target < 10 %%), warm median %v (target < 50ms)\n",
		100*float64(s.size)/float64(v.size), ms(pct(s.warm, 0.5)))
	return slidingWake(p, runs*10)
}

// slidingWake times a sliding sync long-poll's wake-up: the reader waits
// with Element X's request, the writer sends a message over HTTP to a room
// (each round another, so it moves into the window), and the time from the
// start of the send to the long-poll's answer with the room is recorded.
func slidingWake(p *populated, rounds int) error {
	b := p.b
	pollClient, sendClient := newHTTPClient(), newHTTPClient()
	first, err := call(pollClient, http.MethodPost, b.url+slidingPath, p.reader.token, []byte(elementXRequest))
	if err != nil {
		return err
	}
	var resp struct {
		Pos   string                     `json:"pos"`
		Rooms map[string]json.RawMessage `json:"rooms"`
	}
	if err := json.Unmarshal(first, &resp); err != nil {
		return err
	}
	type polled struct {
		body []byte
		at   time.Time
		err  error
	}
	wake := make([]time.Duration, 0, rounds)
	for i := range rounds {
		done := make(chan polled, 1)
		pos := resp.Pos
		go func() {
			body, err := call(pollClient, http.MethodPost, b.url+slidingPath+"?timeout=30000&pos="+url.QueryEscape(pos), p.reader.token, []byte(elementXRequest))
			done <- polled{body, time.Now(), err}
		}()
		if err := waitForWaiters(b, 1, 10*time.Second); err != nil {
			return err
		}
		roomID := p.roomIDs[(i*7)%len(p.roomIDs)]
		t0 := time.Now()
		content := fmt.Appendf(nil, `{"msgtype":"m.text","body":"wake %d"}`, i)
		if _, err := call(sendClient, http.MethodPut, sendURL(b.url, roomID, fmt.Sprintf("sliding-wake-%d", i)), p.writer.token, content); err != nil {
			return err
		}
		var r polled
		select {
		case r = <-done:
		case <-time.After(30 * time.Second):
			return fmt.Errorf("round %d: the sliding sync long-poll did not return", i)
		}
		if r.err != nil {
			return r.err
		}
		resp.Rooms = nil
		if err := json.Unmarshal(r.body, &resp); err != nil {
			return err
		}
		if resp.Rooms[string(roomID)] == nil {
			return fmt.Errorf("round %d: the long-poll returned without the room: %.600s", i, r.body)
		}
		wake = append(wake, r.at.Sub(t0))
	}
	slices.Sort(wake)
	fmt.Printf("   sliding sync long-poll wake-up, %d rounds (a message to a room outside the window each time): p50 %v, p90 %v, max %v\n\n",
		rounds, ms(pct(wake, 0.50)), ms(pct(wake, 0.90)), ms(wake[len(wake)-1]))
	return nil
}

package server_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/internal/testserver"
)

// BenchmarkSendHTTP measures PUT /send over HTTP on loopback, as a client
// sees it: one sender, and eight senders sharing a room (whose events the
// group commit stores together). Each message is committed durably before
// its answer; the room has two members, so each message also stores a
// notification for the other.
func BenchmarkSendHTTP(b *testing.B) {
	for _, senders := range []int{1, 8} {
		b.Run(fmt.Sprintf("senders=%d", senders), func(b *testing.B) {
			ts := testserver.New(b)
			alice := ts.RegisterUser("alice")
			bob := ts.RegisterUser("bob")
			ctx := context.Background()
			room, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat"})
			if err != nil {
				b.Fatal(err)
			}
			if _, err := bob.JoinRoomByID(ctx, room.RoomID); err != nil {
				b.Fatal(err)
			}
			tokens := make([]string, senders)
			for i := range tokens {
				tokens[i] = ts.Login("alice", testserver.DefaultPassword).AccessToken
			}
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: senders}}
			body := []byte(`{"msgtype":"m.text","body":"hello"}`)
			lat := make([][]time.Duration, senders)
			var wg sync.WaitGroup
			b.ResetTimer()
			for i := range senders {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for j := i; j < b.N; j += senders {
						u := fmt.Sprintf("%s/_matrix/client/v3/rooms/%s/send/m.room.message/b%d", ts.URL, url.PathEscape(string(room.RoomID)), j)
						req, _ := http.NewRequest(http.MethodPut, u, bytes.NewReader(body))
						req.Header.Set("Authorization", "Bearer "+tokens[i])
						start := time.Now()
						resp, err := client.Do(req)
						if err != nil {
							b.Error(err)
							return
						}
						io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
						if resp.StatusCode != http.StatusOK {
							b.Errorf("send: HTTP %d", resp.StatusCode)
							return
						}
						lat[i] = append(lat[i], time.Since(start))
					}
				}()
			}
			wg.Wait()
			b.StopTimer()
			all := slices.Concat(lat...)
			slices.Sort(all)
			if len(all) > 0 {
				b.ReportMetric(float64(all[len(all)/2].Microseconds())/1000, "p50-ms")
				b.ReportMetric(float64(all[len(all)*99/100].Microseconds())/1000, "p99-ms")
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}

// BenchmarkWakeUp measures, as a client sees it, the time from the start
// of a send to the return of another member's long-polling /sync that
// carries the message (the load driver's wake-up figure, but back to back:
// without its idle pause, so it shows the server's work rather than the
// machine's wake from idle). Each sync starts from the previous one's
// next_batch, as a client's does. The receiver is in one room, or in 20
// (a family member's room list) with the messages in one of them.
func BenchmarkWakeUp(b *testing.B) {
	for _, rooms := range []int{1, 20} {
		b.Run(fmt.Sprintf("rooms=%d", rooms), func(b *testing.B) {
			benchmarkWakeUp(b, rooms)
		})
	}
}

func benchmarkWakeUp(b *testing.B, nRooms int) {
	ts := testserver.New(b)
	alice := ts.RegisterUser("alice")
	bob := ts.RegisterUser("bob")
	ctx := context.Background()
	var room id.RoomID
	for range nRooms {
		created, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat", Invite: []id.UserID{bob.UserID}})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := bob.JoinRoomByID(ctx, created.RoomID); err != nil {
			b.Fatal(err)
		}
		room = created.RoomID
	}
	first, err := alice.SyncRequest(ctx, 0, "", "", false, "")
	if err != nil {
		b.Fatal(err)
	}
	since := first.NextBatch
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		type synced struct {
			next string
			err  error
		}
		woke := make(chan synced, 1)
		go func(since string) {
			for {
				resp, err := alice.SyncRequest(ctx, 30000, since, "", false, "")
				if err != nil {
					woke <- synced{err: err}
					return
				}
				since = resp.NextBatch
				if jr := resp.Rooms.Join[room]; jr != nil && len(jr.Timeline.Events) > 0 {
					woke <- synced{next: since}
					return
				}
			}
		}(since)
		// Let the long-poll reach the server and park there.
		time.Sleep(2 * time.Millisecond)
		start := time.Now()
		if _, err := bob.SendText(ctx, room, fmt.Sprintf("wake %d", i)); err != nil {
			b.Fatal(err)
		}
		s := <-woke
		if s.err != nil {
			b.Fatal(s.err)
		}
		lat = append(lat, time.Since(start))
		since = s.next
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*9/10].Microseconds())/1000, "p90-ms")
}

package server_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.mau.fi/util/exhttp"
	"go.mau.fi/util/jsontime"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	mfed "maunium.net/go/mautrix/federation"
	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/internal/testserver"
	"github.com/palpo-im/palpo-desktop/server/rooms"
)

// BenchmarkFederationInbound measures PUT /send as the receiving server
// sees it: transactions of 50 PDUs (messages of A's users, built and
// signed on A while it could not reach B), each PDU checked (signature,
// hash, auth rules, soft failure) and stored by B.
func BenchmarkFederationInbound(b *testing.B) {
	f := newFedRoom(b, "")
	a, bs, alice, roomID, ca := f.A, f.B, f.Alice, f.Room, f.CA
	ctx := context.Background()
	block := &blockable{}
	a.Federation().SetTransport(block.choose)
	block.set(true)
	var ids []id.EventID
	for i := range b.N {
		resp, err := alice.SendText(ctx, roomID, fmt.Sprintf("message %d", i))
		if err != nil {
			b.Fatal(err)
		}
		ids = append(ids, resp.EventID)
	}
	evs, err := a.Rooms().Events(ctx, ids)
	if err != nil {
		b.Fatal(err)
	}
	var pdus []json.RawMessage
	for _, evID := range ids {
		raw, err := a.Rooms().EventForServer(ctx, bs.ServerName(), evs[evID].ID)
		if err != nil {
			b.Fatal(err)
		}
		pdus = append(pdus, raw)
	}
	// A client signing as A, beside A's own sender (which stays cut off,
	// so B takes these transactions alone).
	client := mfed.NewClient(a.ServerName(), a.SigningKey(), nil, exhttp.ClientSettings{})
	client.AllowIP = func(net.IP) bool { return true }
	client.HTTP.Transport.(*mfed.ServerResolvingTransport).Transport.TLSClientConfig = &tls.Config{RootCAs: ca.Pool()}
	b.ResetTimer()
	for start := 0; start < len(pdus); start += 50 {
		end := min(start+50, len(pdus))
		resp, err := client.SendTransaction(ctx, &mfed.ReqSendTransaction{
			Destination: bs.ServerName(), TxnID: "bench" + strconv.Itoa(start), Origin: a.ServerName(),
			OriginServerTS: jsontime.UM(time.Now()), PDUs: pdus[start:end],
		})
		if err != nil {
			b.Fatal(err)
		}
		for evID, r := range resp.PDUs {
			if r.Error != "" {
				b.Fatalf("%s: %s", evID, r.Error)
			}
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkFederationSendToSync measures a message sent on A until bob's
// long-poll /sync on B returns it: A's commit, its outbound queue, the
// transaction over loopback TLS, B's checks and commit, and B's sync.
func BenchmarkFederationSendToSync(b *testing.B) {
	f := newFedRoom(b, "")
	alice, bob, roomID := f.Alice, f.Bob, f.Room
	ctx := context.Background()
	resp, err := bob.SyncRequest(ctx, 0, "", "", false, event.PresenceOnline)
	if err != nil {
		b.Fatal(err)
	}
	since := resp.NextBatch
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		got := make(chan time.Duration, 1)
		var start time.Time
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			body := fmt.Sprintf("ping %d", i)
			for {
				r, err := bob.SyncRequest(ctx, 10000, since, "", false, event.PresenceOnline)
				if err != nil {
					b.Error(err)
					got <- 0
					return
				}
				since = r.NextBatch
				if jr, ok := r.Rooms.Join[roomID]; ok {
					for _, ev := range jr.Timeline.Events {
						if s, _ := ev.Content.Raw["body"].(string); s == body {
							got <- time.Since(start)
							return
						}
					}
				}
			}
		}()
		// Let the long-poll start waiting first, as a phone's would be.
		time.Sleep(20 * time.Millisecond)
		start = time.Now()
		if _, err := alice.SendText(ctx, roomID, fmt.Sprintf("ping %d", i)); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, <-got)
		wg.Wait()
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
}

// BenchmarkFederationJoinLargeRoom measures joining, from B, a room of A
// with many members (local users of A joined through the rooms service):
// make_join, send_join with the whole state and auth chain, and B checking
// and storing all of it. Peak RSS is this process's (both servers), reset
// before the join.
func BenchmarkFederationJoinLargeRoom(b *testing.B) {
	for _, members := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("members=%d", members), func(b *testing.B) {
			if members > 1000 && testing.Short() {
				b.Skip("short")
			}
			ca := testserver.NewCA(b)
			a := testserver.New(b, testserver.Federated(ca))
			ctx := context.Background()
			alice := a.RegisterUser("alice")
			room, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat"})
			if err != nil {
				b.Fatal(err)
			}
			var wg sync.WaitGroup
			for w := range 8 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := w; i < members; i += 8 {
						u := id.NewUserID(fmt.Sprintf("member%d", i), a.ServerName())
						if _, err := a.Rooms().ChangeMembership(ctx, rooms.MembershipChange{Sender: u, Target: u, RoomID: room.RoomID, Membership: event.MembershipJoin}); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			for i := range b.N {
				bs := testserver.New(b, testserver.Federated(ca))
				bob := bs.RegisterUser("bob")
				runtime.GC()
				resetPeakRSS()
				start := time.Now()
				if _, err := bob.JoinRoom(ctx, room.RoomID.String(), &mautrix.ReqJoinRoom{Via: []string{a.ServerName()}}); err != nil {
					b.Fatal(err)
				}
				took := time.Since(start)
				if i == 0 {
					b.ReportMetric(float64(took.Milliseconds()), "join-ms")
					b.ReportMetric(float64(peakRSS())/(1<<20), "peak-RSS-MB")
				}
			}
		})
	}
}

// resetPeakRSS resets this process's VmHWM (Linux), so peakRSS measures
// from now.
func resetPeakRSS() { _ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) }

// peakRSS is this process's VmHWM in bytes (0 where unknown).
func peakRSS() int64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

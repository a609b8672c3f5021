package e2ee_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/crypto/goolm/pk"
	"maunium.net/go/mautrix/crypto/signatures"
	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/accounts"
	"github.com/palpo-im/palpo-desktop/server/internal/testserver"
)

// These benchmarks drive a real server over HTTP with mautrix's client,
// so each figure is what a client waits for: routing, authentication,
// JSON both ways and the database.

// benchDevice is a logged-in device that signs its keys.
type benchDevice struct {
	c      *mautrix.Client
	signer *pk.Signing
}

func benchRandomKey(b *testing.B) string {
	buf := make([]byte, 32)
	if _, err := rand.Read(buf); err != nil {
		b.Fatal(err)
	}
	return base64.RawStdEncoding.EncodeToString(buf)
}

func (d *benchDevice) sign(b *testing.B, obj any) signatures.Signatures {
	sig, err := d.signer.SignJSON(obj)
	if err != nil {
		b.Fatal(err)
	}
	return signatures.NewSingleSignature(d.c.UserID, id.KeyAlgorithmEd25519, string(d.c.DeviceID), sig)
}

// benchUsers creates n users without passwords (hashing them would
// dominate the set-up), each logged in on one device.
func benchUsers(b *testing.B, ts *testserver.Server, n int) []*benchDevice {
	out := make([]*benchDevice, n)
	for i := range n {
		res, err := ts.Accounts().CreateAccount(context.Background(), accounts.NewAccount{
			Localpart: fmt.Sprintf("user%04d", i), ByAdmin: true,
			Login: &accounts.SessionParams{DisplayName: fmt.Sprintf("Device of user %d", i)},
		})
		if err != nil {
			b.Fatal(err)
		}
		c, err := mautrix.NewClient(ts.URL, res.UserID, res.AccessToken)
		if err != nil {
			b.Fatal(err)
		}
		c.DeviceID = res.DeviceID
		s, err := pk.NewSigning()
		if err != nil {
			b.Fatal(err)
		}
		out[i] = &benchDevice{c: c, signer: s}
	}
	return out
}

// uploadDeviceKeys uploads the device's signed identity keys.
func (d *benchDevice) uploadDeviceKeys(b *testing.B) {
	dk := &mautrix.DeviceKeys{
		UserID: d.c.UserID, DeviceID: d.c.DeviceID,
		Algorithms: []id.Algorithm{id.AlgorithmOlmV1, id.AlgorithmMegolmV1},
		Keys: mautrix.KeyMap{
			id.NewDeviceKeyID(id.KeyAlgorithmEd25519, d.c.DeviceID):    string(d.signer.PublicKey()),
			id.NewDeviceKeyID(id.KeyAlgorithmCurve25519, d.c.DeviceID): benchRandomKey(b),
		},
	}
	dk.Signatures = d.sign(b, dk)
	if _, err := d.c.UploadKeys(b.Context(), &mautrix.ReqUploadKeys{DeviceKeys: dk}); err != nil {
		b.Fatal(err)
	}
}

// uploadOTKs uploads n one-time keys with IDs from first on. They share
// one signed key object: the server cares about IDs, and the claim path
// is what is measured.
func (d *benchDevice) uploadOTKs(b *testing.B, first, n int) {
	k := mautrix.OneTimeKey{Key: id.Curve25519(benchRandomKey(b)), IsSigned: true}
	k.Signatures = d.sign(b, &k)
	keys := make(map[id.KeyID]mautrix.OneTimeKey, n)
	for i := first; i < first+n; i++ {
		keys[id.NewKeyID(id.KeyAlgorithmSignedCurve25519, fmt.Sprintf("K%08d", i))] = k
	}
	if _, err := d.c.UploadKeys(b.Context(), &mautrix.ReqUploadKeys{OneTimeKeys: keys}); err != nil {
		b.Fatal(err)
	}
}

func reportLatency(b *testing.B, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
}

// BenchmarkClaim100Devices measures one POST /keys/claim for one-time keys
// of 100 devices (100 users), as a client does before sharing a Megolm
// session in a room of 100: each claim deletes 100 keys in one write
// transaction.
func BenchmarkClaim100Devices(b *testing.B) {
	ts := testserver.New(b)
	devices := benchUsers(b, ts, 101)
	claimer, devices := devices[0], devices[1:]
	req := &mautrix.ReqClaimKeys{OneTimeKeys: mautrix.OneTimeKeysRequest{}}
	for _, d := range devices {
		d.uploadDeviceKeys(b)
		req.OneTimeKeys[d.c.UserID] = map[id.DeviceID]id.KeyAlgorithm{d.c.DeviceID: id.KeyAlgorithmSignedCurve25519}
	}
	b.Run("claim", func(b *testing.B) {
		const batch = 200
		uploaded := 0
		lat := make([]time.Duration, 0, b.N)
		for i := 0; b.Loop(); i++ {
			if i == uploaded {
				b.StopTimer()
				for _, d := range devices {
					d.uploadOTKs(b, uploaded, batch)
				}
				uploaded += batch
				b.StartTimer()
			}
			start := time.Now()
			resp, err := claimer.c.ClaimKeys(b.Context(), req)
			if err != nil {
				b.Fatal(err)
			}
			lat = append(lat, time.Since(start))
			if len(resp.OneTimeKeys) != len(devices) {
				b.Fatalf("claimed keys of %d users, want %d", len(resp.OneTimeKeys), len(devices))
			}
			for _, byDevice := range resp.OneTimeKeys {
				for _, keys := range byDevice {
					for _, k := range keys {
						if k.Fallback {
							b.Fatal("ran out of one-time keys")
						}
					}
				}
			}
		}
		reportLatency(b, lat)
		b.ReportMetric(float64(len(devices)*b.N)/b.Elapsed().Seconds(), "keys/s")
	})
}

// BenchmarkQuery1000Users measures one POST /keys/query for 1,000 users,
// each with one device and master and self-signing keys: what a client
// asks when it joins a large encrypted room.
func BenchmarkQuery1000Users(b *testing.B) {
	ts := testserver.New(b)
	devices := benchUsers(b, ts, 1000)
	req := &mautrix.ReqQueryKeys{DeviceKeys: mautrix.DeviceKeysRequest{}}
	for _, d := range devices {
		d.uploadDeviceKeys(b)
		master, err := pk.NewSigning()
		if err != nil {
			b.Fatal(err)
		}
		self, err := pk.NewSigning()
		if err != nil {
			b.Fatal(err)
		}
		mk := mautrix.CrossSigningKeys{UserID: d.c.UserID, Usage: []id.CrossSigningUsage{id.XSUsageMaster},
			Keys: map[id.KeyID]id.Ed25519{id.KeyID("ed25519:" + master.PublicKey()): master.PublicKey()}}
		ssk := mautrix.CrossSigningKeys{UserID: d.c.UserID, Usage: []id.CrossSigningUsage{id.XSUsageSelfSigning},
			Keys: map[id.KeyID]id.Ed25519{id.KeyID("ed25519:" + self.PublicKey()): self.PublicKey()}}
		sig, err := master.SignJSON(ssk)
		if err != nil {
			b.Fatal(err)
		}
		ssk.Signatures = signatures.NewSingleSignature(d.c.UserID, id.KeyAlgorithmEd25519, string(master.PublicKey()), sig)
		body := map[string]any{"master_key": mk, "self_signing_key": ssk}
		if _, err := d.c.MakeRequest(b.Context(), "POST", d.c.BuildClientURL("v3", "keys", "device_signing", "upload"), body, nil); err != nil {
			b.Fatal(err)
		}
		req.DeviceKeys[d.c.UserID] = mautrix.DeviceIDList{}
	}
	querier := devices[0].c
	b.Run("query", func(b *testing.B) {
		lat := make([]time.Duration, 0, b.N)
		var size int
		for b.Loop() {
			start := time.Now()
			raw, err := querier.MakeRequest(b.Context(), "POST", querier.BuildClientURL("v3", "keys", "query"), req, nil)
			if err != nil {
				b.Fatal(err)
			}
			lat = append(lat, time.Since(start))
			size = len(raw)
			var resp mautrix.RespQueryKeys
			if err := json.Unmarshal(raw, &resp); err != nil {
				b.Fatal(err)
			}
			if len(resp.DeviceKeys) != len(devices) || len(resp.MasterKeys) != len(devices) || len(resp.SelfSigningKeys) != len(devices) {
				b.Fatalf("got %d users' devices, %d master keys, %d self-signing keys; want %d each",
					len(resp.DeviceKeys), len(resp.MasterKeys), len(resp.SelfSigningKeys), len(devices))
			}
		}
		reportLatency(b, lat)
		b.ReportMetric(float64(size)/1024, "resp-KiB")
	})
}

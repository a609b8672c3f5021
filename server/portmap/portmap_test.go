package portmap

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"
)

// newTestMapper is an enabled mapper that talks to the router discover
// returns, with short lifetimes and retries so renewals happen within a
// test.
func newTestMapper(t *testing.T, discover func(ctx context.Context) (gatewayClient, error)) *Mapper {
	t.Helper()
	m := New(true, nil)
	m.discover = discover
	m.lifetime = 2 * time.Second
	m.retry = time.Second
	t.Cleanup(func() { m.Stop(context.Background()) })
	return m
}

func natPMPAt(f *fakeNATPMP) func(ctx context.Context) (gatewayClient, error) {
	return func(ctx context.Context) (gatewayClient, error) {
		n := newNATPMP(f.ip, 2*time.Second)
		if _, err := n.externalIP(ctx); err != nil {
			return nil, err
		}
		return n, nil
	}
}

func mapping(st Status, port int) Mapping {
	for _, m := range st.Mappings {
		if m.InternalPort == port {
			return m
		}
	}
	return Mapping{}
}

// Disabled, the mapper never looks for a router and sends nothing: the
// discovery seam is the only way to the network, and it is never called.
func TestDisabledDoesNoIO(t *testing.T) {
	m := New(false, nil)
	m.discover = func(context.Context) (gatewayClient, error) {
		t.Error("a disabled mapper looked for a router")
		return nil, errors.New("no")
	}
	m.Start([]Port{{Name: "federation", Port: 8448}})
	st := m.Status()
	if st.Enabled || st.Method != "" || len(st.Mappings) != 0 || st.LastError != "" {
		t.Fatalf("status of a disabled mapper: %+v", st)
	}
	if err := m.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if m.cancel != nil || m.client != nil {
		t.Fatal("a disabled mapper started work")
	}
}

// NAT-PMP: both ports mapped (one granted on another external port),
// renewed before the lifetime ends, deleted at stop.
func TestNATPMPMapsRenewsAndDeletes(t *testing.T) {
	f := newFakeNATPMP(t)
	f.set(2, 0) // the router grants two seconds: renewal after one
	m := newTestMapper(t, natPMPAt(f))
	m.Start([]Port{{Name: "federation", Port: 8448}, {Name: "http-challenge", Port: 80}, {Name: "duplicate", Port: 8448}, {Name: "bad", Port: 0}})

	waitFor(t, "both ports mapped", func() bool {
		st := m.Status()
		return mapping(st, 8448).Mapped() && mapping(st, 80).Mapped()
	})
	st := m.Status()
	if st.Method != MethodNATPMP || st.Gateway != f.ip.String() || st.ExternalIP != "203.0.113.7" || st.LastError != "" || len(st.Mappings) != 2 {
		t.Fatalf("status: %+v", st)
	}
	fed, challenge := mapping(st, 8448), mapping(st, 80)
	if fed.Name != "federation" || fed.ExternalPort != 8448 || fed.Protocol != "tcp" || challenge.ExternalPort != 10080 {
		t.Fatalf("mappings: %+v", st.Mappings)
	}
	if d := time.Until(fed.Expires); d <= 0 || d > 2*time.Second {
		t.Fatalf("expiry %v away, want within the 2s granted", d)
	}
	if got, ok, _, _ := f.state(8448); !ok || got.external != 8448 || got.lifetime != 2 {
		t.Fatalf("router's mapping: %+v %v", got, ok)
	}

	// Renewed: more requests arrive, and the expiry moves on, asking
	// again for the external port the router gave.
	firstExpiry := fed.Expires
	waitFor(t, "renewals", func() bool {
		_, _, n, _ := f.state(80)
		return n >= 3 && mapping(m.Status(), 8448).Expires.After(firstExpiry)
	})
	if got, _, _, _ := f.state(80); got.external != 10080 {
		t.Fatalf("renewal changed the external port to %d", got.external)
	}

	if err := m.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, p := range []uint16{8448, 80} {
		if _, ok, _, deleted := f.state(p); ok || !deleted {
			t.Fatalf("port %d still mapped after stop", p)
		}
	}
	for _, mp := range m.Status().Mappings {
		if mp.Mapped() {
			t.Fatalf("status still shows %+v mapped", mp)
		}
	}
}

// A router that refuses says so in the status, for the port and overall,
// and the mapper keeps trying: once allowed, the mapping appears.
func TestNATPMPRefusalReportedThenRecovered(t *testing.T) {
	f := newFakeNATPMP(t)
	f.set(3600, 2) // Not Authorized/Refused
	m := newTestMapper(t, natPMPAt(f))
	m.Start([]Port{{Name: "federation", Port: 8448}})
	waitFor(t, "the refusal in the status", func() bool { return m.Status().LastError != "" })
	st := m.Status()
	if !strings.Contains(st.LastError, "Refused") || st.LastErrorAt.IsZero() || mapping(st, 8448).Mapped() ||
		!strings.Contains(mapping(st, 8448).Error, "Refused") {
		t.Fatalf("status after a refusal: %+v", st)
	}

	f.set(3600, 0)
	waitFor(t, "the mapping after the router allows it", func() bool { return mapping(m.Status(), 8448).Mapped() })
	st = m.Status()
	if st.LastError != "" || mapping(st, 8448).Error != "" {
		t.Fatalf("status after recovery still shows an error: %+v", st)
	}
}

// No router at all: the status says so and how to fix it.
func TestNoRouterReported(t *testing.T) {
	m := newTestMapper(t, func(context.Context) (gatewayClient, error) {
		return nil, errors.New("NAT-PMP: connection refused")
	})
	m.Start([]Port{{Name: "federation", Port: 8448}})
	waitFor(t, "the error in the status", func() bool { return m.Status().LastError != "" })
	st := m.Status()
	if st.Method != "" || !strings.Contains(st.LastError, "no router answered") || !strings.Contains(st.LastError, "connection refused") {
		t.Fatalf("status: %+v", st)
	}
	if err := m.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func upnpAtFake(t *testing.T, f *fakeIGD) func(ctx context.Context) (gatewayClient, error) {
	loc := f.location(t)
	return func(ctx context.Context) (gatewayClient, error) { return upnpAt(ctx, loc) }
}

// UPnP IGD: the mapping is made for this computer's address, renewed,
// and deleted at stop.
func TestUPnPMapsRenewsAndDeletes(t *testing.T) {
	f := newFakeIGD(t)
	m := newTestMapper(t, upnpAtFake(t, f))
	m.Start([]Port{{Name: "federation", Port: 8448}})
	waitFor(t, "the mapping", func() bool { return mapping(m.Status(), 8448).Mapped() })
	st := m.Status()
	if st.Method != MethodUPnP || st.Gateway != f.location(t).String() || st.ExternalIP != "198.51.100.9" || st.LastError != "" {
		t.Fatalf("status: %+v", st)
	}
	got, ok, _, _ := f.state(8448)
	if !ok || got.InternalPort != "8448" || net.ParseIP(got.InternalClient) == nil || !net.ParseIP(got.InternalClient).IsLoopback() ||
		got.Lease != "2" || got.Description != mappingDescription {
		t.Fatalf("router's mapping: %+v", got)
	}
	if mp := mapping(st, 8448); mp.ExternalPort != 8448 || time.Until(mp.Expires) <= 0 {
		t.Fatalf("mapping: %+v", mp)
	}
	waitFor(t, "a renewal", func() bool { _, _, n, _ := f.state(8448); return n >= 2 })

	if err := m.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, ok, _, deleted := f.state(8448); ok || !deleted {
		t.Fatal("mapping still on the router after stop")
	}
}

// A router that grants only permanent mappings (UPnP error 725) gets one,
// shown without expiry, and it is still deleted at stop.
func TestUPnPPermanentOnly(t *testing.T) {
	f := newFakeIGD(t)
	f.permanentOnly = true
	m := newTestMapper(t, upnpAtFake(t, f))
	m.Start([]Port{{Name: "federation", Port: 8448}})
	waitFor(t, "the mapping", func() bool { return mapping(m.Status(), 8448).Mapped() })
	if mp := mapping(m.Status(), 8448); !mp.Expires.IsZero() {
		t.Fatalf("a permanent mapping shows an expiry: %+v", mp)
	}
	if got, _, _, _ := f.state(8448); got.Lease != "0" {
		t.Fatalf("lease asked: %q", got.Lease)
	}
	if err := m.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, ok, _, _ := f.state(8448); ok {
		t.Fatal("permanent mapping left on the router")
	}
}

// A port the router will not map (taken by another computer) is
// reported with the router's reason.
func TestUPnPConflictReported(t *testing.T) {
	f := newFakeIGD(t)
	f.fault = 718
	m := newTestMapper(t, upnpAtFake(t, f))
	m.Start([]Port{{Name: "federation", Port: 8448}})
	waitFor(t, "the error in the status", func() bool { return m.Status().LastError != "" })
	st := m.Status()
	if mp := mapping(st, 8448); mp.Mapped() || !strings.Contains(mp.Error, "718") || !strings.Contains(st.LastError, "ConflictInMappingEntry") {
		t.Fatalf("status: %+v", st)
	}
}

// A router that stops answering after the mapping was made: the failed
// renewal is reported, and the port is shown unmapped once its lifetime
// has passed.
func TestRenewalFailureReported(t *testing.T) {
	f := newFakeIGD(t)
	m := newTestMapper(t, upnpAtFake(t, f))
	m.Start([]Port{{Name: "federation", Port: 8448}})
	waitFor(t, "the mapping", func() bool { return mapping(m.Status(), 8448).Mapped() })
	f.srv.Close()
	waitFor(t, "the failed renewal in the status", func() bool { return m.Status().LastError != "" })
	if mp := mapping(m.Status(), 8448); mp.Error == "" {
		t.Fatalf("mapping after a failed renewal: %+v", mp)
	}
	waitFor(t, "the expired mapping shown unmapped", func() bool { return !mapping(m.Status(), 8448).Mapped() })
}

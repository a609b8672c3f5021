package federation

import (
	"context"

	"github.com/palpo-im/palpo-desktop/p2p"
	"github.com/palpo-im/palpo-desktop/server/federation/outbound"
	"github.com/palpo-im/palpo-desktop/server/portmap"
)

// Status is federation as the admin API and the desktop app show it.
type Status struct {
	// Enabled is federation.enabled in the config.
	Enabled bool
	// ServerName is the name other servers know this one by.
	ServerName string
	// Listen is the configured federation.listen address; Addr is the
	// address actually bound ("" when the listener is not running, as when
	// federation is off or the server has not started).
	Listen string
	Addr   string
	// WellKnownServer is the delegation target served at
	// /.well-known/matrix/server ("" when none).
	WellKnownServer string
	// Certificate is the certificate the federation (and https) listener
	// serves: nil when none is in use (both off, or not started). With
	// automatic TLS it is there before the first certificate, with a zero
	// NotAfter and the order's error, if any.
	Certificate *CertificateStatus
	// HTTPSAddr is the client API's https listener's bound address, ""
	// when [https] is off (the server fills it in).
	HTTPSAddr string
	// Destinations are the servers this one has sent to or owes
	// something, by name (empty when federation is off).
	Destinations []outbound.DestinationStatus
	// PortMapping is the home router's port forwarding, nil unless
	// federation.port_mapping is on (filled in by the server, which owns
	// the mapper).
	PortMapping *portmap.Status
	// P2P is peer-to-peer federation's state, nil when p2p is off (the
	// server fills it in).
	P2P *p2p.Status
}

// Status reports the listener and, through sender (nil when federation is
// off), the outbound queues.
func (s *Service) Status(ctx context.Context, sender *outbound.Sender) (Status, error) {
	st := Status{Enabled: s.fed.Enabled, ServerName: s.cfg.ServerName, WellKnownServer: s.fed.WellKnownServer,
		Destinations: []outbound.DestinationStatus{}}
	if s.tlsListener() {
		st.Listen = s.fed.Listen
	}
	if a := s.Addr(); a != nil {
		st.Addr = a.String()
	}
	s.mu.Lock()
	hasCert := s.auto != nil || s.fileCert != nil
	s.mu.Unlock()
	if hasCert {
		c := s.CertificateStatus()
		st.Certificate = &c
	}
	if sender == nil {
		return st, nil
	}
	dests, err := sender.Destinations(ctx)
	if err != nil {
		return st, err
	}
	st.Destinations = append(st.Destinations, dests...)
	return st, nil
}

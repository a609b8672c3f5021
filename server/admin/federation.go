package admin

import (
	"context"
	"net/http"
	"time"

	"github.com/palpo-im/palpo-desktop/server/accounts"
	"github.com/palpo-im/palpo-desktop/server/federation/selfcheck"
	"github.com/palpo-im/palpo-desktop/server/httpapi"
)

// palpoPrefix is where Palpo serves admin endpoints Synapse has no
// counterpart for, so they never collide with one Synapse adds later.
const palpoPrefix = "/_palpo/admin"

func (a *API) registerFederation(rt *httpapi.Router) {
	if a.deps.Federation == nil {
		return
	}
	rt.Handle(http.MethodGet, palpoPrefix+"/v1/federation", a.admin(a.federationStatus))
	if a.deps.FederationCheck != nil {
		rt.Handle(http.MethodGet, palpoPrefix+"/v1/federation/check", a.admin(a.federationCheck))
	}
}

// federationCheckJSON is GET /_palpo/admin/v1/federation/check's answer:
// the self-check's results in order, and whether any failed.
type federationCheckJSON struct {
	ServerName string             `json:"server_name"`
	Failed     bool               `json:"failed"`
	Results    []selfcheck.Result `json:"results"`
}

// checkTimeout bounds a whole self-check (each step has its own, shorter
// limit), so the app's Check button always gets an answer.
const checkTimeout = time.Minute

func (a *API) federationCheck(w http.ResponseWriter, r *http.Request, _ *accounts.Caller) error {
	ctx, cancel := context.WithTimeout(r.Context(), checkTimeout)
	defer cancel()
	results, err := a.deps.FederationCheck(ctx)
	if err != nil {
		return err
	}
	if results == nil {
		results = []selfcheck.Result{}
	}
	return httpapi.WriteJSON(w, http.StatusOK, federationCheckJSON{ServerName: a.deps.ServerName, Failed: selfcheck.Failed(results), Results: results})
}

// federationJSON is GET /_palpo/admin/v1/federation's answer. Synapse's
// /v1/federation/destinations has no queue length or last error, which
// is what someone asking "why does matrix.org not get my messages?" needs,
// so this is Palpo's own shape; times are in milliseconds, as in Synapse.
type federationJSON struct {
	Enabled    bool   `json:"enabled"`
	ServerName string `json:"server_name"`
	// Listen is the configured address, null when federation is off.
	Listen *string `json:"listen"`
	// ListeningOn is the bound address, null when not listening.
	ListeningOn     *string           `json:"listening_on"`
	WellKnownServer *string           `json:"well_known_server"`
	Destinations    []destinationJSON `json:"destinations"`
	Total           int               `json:"total"`
	// PortMapping is absent unless federation.port_mapping is on.
	PortMapping *portMappingJSON `json:"port_mapping,omitempty"`
	// HTTPSListeningOn is the client API's https listener, null when
	// [https] is off.
	HTTPSListeningOn *string `json:"https_listening_on"`
	// Certificate is the certificate served, null when none is in use.
	Certificate *certificateJSON `json:"certificate"`
	// P2P is peer-to-peer federation, absent when p2p is off.
	P2P *p2pJSON `json:"p2p,omitempty"`
}

// certificateJSON is federation.CertificateStatus; null fields are unknown
// or do not apply (no certificate yet, certificate files).
type certificateJSON struct {
	// Automatic: from an ACME CA for federation.domain (false: files).
	Automatic    bool    `json:"automatic"`
	Domain       *string `json:"domain"`
	CA           *string `json:"ca"`
	Issuer       *string `json:"issuer"`
	NotBeforeTS  *int64  `json:"not_before_ts"`
	ExpiresTS    *int64  `json:"expires_ts"`
	RenewalDueTS *int64  `json:"renewal_due_ts"`
	ExpiringSoon bool    `json:"expiring_soon"`
	// LastRenewedTS is when this run of the server last obtained or
	// renewed the certificate.
	LastRenewedTS *int64  `json:"last_renewed_ts"`
	LastError     *string `json:"last_error"`
	LastErrorTS   *int64  `json:"last_error_ts"`
}

// p2pJSON is the libp2p node: identity, reachability ("direct", "relay",
// "unreachable" or "unknown"), peers and addresses.
type p2pJSON struct {
	Running        bool     `json:"running"`
	PeerID         string   `json:"peer_id"`
	ServerName     string   `json:"server_name"`
	Reachability   string   `json:"reachability"`
	Peers          int      `json:"peers"`
	DHTPeers       int      `json:"dht_peers"`
	ListenAddrs    []string `json:"listen_addrs"`
	Addrs          []string `json:"addrs"`
	ReachableAddrs []string `json:"reachable_addrs"`
	HolePunching   bool     `json:"hole_punching"`
	MDNS           bool     `json:"mdns"`
	DHT            bool     `json:"dht"`
}

type destinationJSON struct {
	Destination   string  `json:"destination"`
	Queued        int     `json:"queued"`
	RetryCount    int     `json:"retry_count"`
	LastError     *string `json:"last_error"`
	NextRetryTS   *int64  `json:"next_retry_ts"`
	LastSuccessTS *int64  `json:"last_success_ts"`
}

func millis(t time.Time) *int64 {
	if t.IsZero() {
		return nil
	}
	ms := t.UnixMilli()
	return &ms
}

func (a *API) federationStatus(w http.ResponseWriter, r *http.Request, _ *accounts.Caller) error {
	st, err := a.deps.Federation(r.Context())
	if err != nil {
		return err
	}
	out := federationJSON{
		Enabled: st.Enabled, ServerName: st.ServerName,
		Listen: nullable(st.Listen), ListeningOn: nullable(st.Addr), WellKnownServer: nullable(st.WellKnownServer),
		Destinations: make([]destinationJSON, len(st.Destinations)), Total: len(st.Destinations),
		PortMapping:      portMappingStatus(st.PortMapping),
		HTTPSListeningOn: nullable(st.HTTPSAddr),
	}
	if c := st.Certificate; c != nil {
		out.Certificate = &certificateJSON{
			Automatic: c.Auto, Domain: nullable(c.Domain), CA: nullable(c.CA), Issuer: nullable(c.Issuer),
			NotBeforeTS: millis(c.NotBefore), ExpiresTS: millis(c.NotAfter), RenewalDueTS: millis(c.RenewalDue), ExpiringSoon: c.ExpiringSoon,
			LastRenewedTS: millis(c.LastObtained), LastError: nullable(c.LastError), LastErrorTS: millis(c.LastErrorAt),
		}
	}
	for i, d := range st.Destinations {
		out.Destinations[i] = destinationJSON{
			Destination: d.Name, Queued: d.Queued, RetryCount: d.RetryCount, LastError: nullable(d.LastError),
			NextRetryTS: millis(d.NextRetry), LastSuccessTS: millis(d.LastSuccess),
		}
	}
	if p := st.P2P; p != nil {
		out.P2P = &p2pJSON{
			Running: p.Running, PeerID: p.PeerID, ServerName: p.ServerName, Reachability: string(p.Reachability),
			Peers: p.Peers, DHTPeers: p.DHTPeers, ListenAddrs: p.ListenAddrs, Addrs: p.Addrs, ReachableAddrs: p.ReachableAddrs,
			HolePunching: p.HolePunching, MDNS: p.MDNS, DHT: p.DHT,
		}
	}
	return httpapi.WriteJSON(w, http.StatusOK, out)
}

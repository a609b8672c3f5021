// Package portmap asks a home router to forward Palpo's public ports to
// this computer, so other Matrix servers can reach a server behind NAT
// without anyone opening ports by hand. Two protocols are spoken: NAT-PMP
// (RFC 6886, to the default gateway) and UPnP IGD (found by SSDP). PCP
// (RFC 6887, NAT-PMP's successor) is not: there is no small Go library
// for it (the implementations known live inside large programs such as
// Tailscale's), and many PCP routers also answer NAT-PMP, as RFC 6887's
// appendix on compatibility allows.
//
// Off by default: a Mapper built disabled sends nothing on the network.
// Enabled, it finds a gateway, maps each port, renews the mappings before
// their lifetime ends, and deletes them when stopped.
package portmap

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"time"
)

// Methods a Status may name.
const (
	MethodNATPMP = "nat-pmp"
	MethodUPnP   = "upnp-igd"
)

// Port is one TCP port to forward: the router's external port of the same
// number is asked for, since other servers connect to the advertised one.
type Port struct {
	// Name says what the port is for ("federation", "http-challenge").
	Name string
	Port int
}

// Mapping is one port as the router has (or has not) mapped it.
type Mapping struct {
	Name         string
	Protocol     string // "tcp"
	InternalPort int
	// ExternalPort is the port the router forwards (0 while not mapped);
	// a router may grant another number than the one asked for.
	ExternalPort int
	// Expires is when the router drops the mapping unless renewed; zero
	// while not mapped, or for a router that only grants permanent ones.
	Expires time.Time
	// Renewed is when the router last granted it.
	Renewed time.Time
	// Error is why the last attempt to map this port failed ("" when it
	// succeeded).
	Error string
}

// Mapped reports whether the router forwards the port now.
func (m Mapping) Mapped() bool { return m.ExternalPort != 0 }

// Status is port mapping as the admin API and the app show it.
type Status struct {
	Enabled bool
	// Method is MethodNATPMP or MethodUPnP, "" while no gateway answered.
	Method string
	// Gateway is the router spoken to (its address, or its UPnP
	// description URL).
	Gateway string
	// ExternalIP is the router's public address as it reports it.
	ExternalIP string
	Mappings   []Mapping
	// LastError is what went wrong in the last attempt ("" when it all
	// worked), at LastErrorAt.
	LastError   string
	LastErrorAt time.Time
}

// gatewayClient is one router spoken to by one protocol.
type gatewayClient interface {
	method() string
	address() string
	externalIP(ctx context.Context) (string, error)
	// add maps internal to external (a wish the router may not grant) for
	// lifetime, and returns what it granted (lifetime 0: permanent).
	add(ctx context.Context, internal, external int, lifetime time.Duration) (granted int, grantedLifetime time.Duration, err error)
	remove(ctx context.Context, internal, external int) error
}

// Defaults for how long mappings last and how often a failed attempt is
// retried.
const (
	// DefaultLifetime is what is asked for; RFC 6886 recommends an hour.
	DefaultLifetime = time.Hour
	// DefaultRetry is the wait after a failure: a router that was off or
	// had the feature disabled may be fixed by then.
	DefaultRetry = 2 * time.Minute
	// callTimeout bounds one request to the router: one on the LAN
	// answers in milliseconds.
	callTimeout = 3 * time.Second
)

// Mapper keeps ports mapped on the home router.
type Mapper struct {
	enabled bool
	log     *slog.Logger

	// Seams for tests; set by New to the real network.
	discover    func(ctx context.Context) (gatewayClient, error)
	lifetime    time.Duration
	retry       time.Duration
	callTimeout time.Duration

	mu      sync.Mutex
	ports   []Port
	client  gatewayClient
	st      Status
	cancel  context.CancelFunc
	done    chan struct{}
	stopped bool
}

// New builds a mapper. It does no I/O, enabled or not: the network is
// used only after Start, and never when enabled is false.
func New(enabled bool, log *slog.Logger) *Mapper {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m := &Mapper{enabled: enabled, log: log, lifetime: DefaultLifetime, retry: DefaultRetry, callTimeout: callTimeout,
		st: Status{Enabled: enabled, Mappings: []Mapping{}}}
	m.discover = m.discoverNetwork
	return m
}

// Enabled reports whether the mapper was built enabled.
func (m *Mapper) Enabled() bool { return m.enabled }

// Start maps ports in the background (duplicates and invalid numbers are
// dropped) and returns at once: a router that does not answer must not
// delay the server. Disabled, it does nothing.
func (m *Mapper) Start(ports []Port) {
	if !m.enabled {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cancel != nil || m.stopped {
		return
	}
	seen := map[int]bool{}
	m.ports = nil
	m.st.Mappings = []Mapping{}
	for _, p := range ports {
		if p.Port <= 0 || p.Port > 65535 || seen[p.Port] {
			continue
		}
		seen[p.Port] = true
		m.ports = append(m.ports, p)
		m.st.Mappings = append(m.st.Mappings, Mapping{Name: p.Name, Protocol: "tcp", InternalPort: p.Port})
	}
	ctx, cancel := context.WithCancel(context.Background())
	m.cancel, m.done = cancel, make(chan struct{})
	go m.run(ctx, m.done)
}

// Stop ends renewal and deletes every mapping made, within ctx: a router
// would otherwise keep forwarding to this computer until the lifetime
// ends. Disabled or never started, it does nothing.
func (m *Mapper) Stop(ctx context.Context) error {
	m.mu.Lock()
	if m.stopped || m.cancel == nil {
		m.stopped = true
		m.mu.Unlock()
		return nil
	}
	m.stopped = true
	cancel, done := m.cancel, m.done
	m.mu.Unlock()
	cancel()
	select {
	case <-done:
	case <-ctx.Done():
		return fmt.Errorf("stop port mapping: %w", ctx.Err())
	}
	m.mu.Lock()
	client := m.client
	mappings := slices.Clone(m.st.Mappings)
	m.mu.Unlock()
	if client == nil {
		return nil
	}
	var errs []error
	for i, mp := range mappings {
		if !mp.Mapped() {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, m.callTimeout)
		err := client.remove(cctx, mp.InternalPort, mp.ExternalPort)
		cancel()
		if err != nil {
			errs = append(errs, fmt.Errorf("delete port mapping %d on %s: %w", mp.ExternalPort, client.address(), err))
			continue
		}
		m.log.Info("Port mapping deleted", "method", client.method(), "external_port", mp.ExternalPort, "port", mp.InternalPort)
		m.mu.Lock()
		m.st.Mappings[i].ExternalPort, m.st.Mappings[i].Expires = 0, time.Time{}
		m.mu.Unlock()
	}
	return errors.Join(errs...)
}

// Status is a copy of the current state.
func (m *Mapper) Status() Status {
	m.mu.Lock()
	defer m.mu.Unlock()
	st := m.st
	st.Mappings = slices.Clone(m.st.Mappings)
	return st
}

func (m *Mapper) run(ctx context.Context, done chan struct{}) {
	defer close(done)
	for {
		wait := m.cycle(ctx)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// cycle finds a gateway if there is none yet, maps or renews every port,
// and returns how long to wait before the next cycle.
func (m *Mapper) cycle(ctx context.Context) time.Duration {
	m.mu.Lock()
	client := m.client
	m.mu.Unlock()
	if client == nil {
		c, err := m.discover(ctx)
		if ctx.Err() != nil {
			return m.retry
		}
		if err != nil {
			m.fail(fmt.Errorf("no router answered NAT-PMP or UPnP IGD (turn one of them on in the router's settings, or forward the ports by hand): %w", err))
			return m.retry
		}
		client = c
		m.mu.Lock()
		m.client = c
		m.st.Method, m.st.Gateway = c.method(), c.address()
		m.mu.Unlock()
		m.log.Info("Port mapping: found a router", "method", c.method(), "gateway", c.address())
	}

	var errs []error
	cctx, cancel := context.WithTimeout(ctx, m.callTimeout)
	ip, err := client.externalIP(cctx)
	cancel()
	if err != nil {
		errs = append(errs, fmt.Errorf("ask %s for its external address: %w", client.address(), err))
	}
	m.mu.Lock()
	if err == nil {
		m.st.ExternalIP = ip
	}
	ports := slices.Clone(m.st.Mappings)
	m.mu.Unlock()

	next := m.lifetime / 2
	mapped := 0
	for i, mp := range ports {
		want := mp.ExternalPort
		if want == 0 {
			want = mp.InternalPort
		}
		cctx, cancel := context.WithTimeout(ctx, m.callTimeout)
		ext, life, err := client.add(cctx, mp.InternalPort, want, m.lifetime)
		cancel()
		if err != nil && ctx.Err() != nil {
			// Stopping; a mapping granted just now is still recorded
			// below, so Stop deletes it.
			return m.retry
		}
		now := time.Now()
		m.mu.Lock()
		cur := &m.st.Mappings[i]
		if err != nil {
			cur.Error = err.Error()
			if !cur.Expires.IsZero() && now.After(cur.Expires) {
				cur.ExternalPort, cur.Expires = 0, time.Time{}
			}
			m.mu.Unlock()
			errs = append(errs, fmt.Errorf("map port %d (%s) on %s: %w", mp.InternalPort, mp.Name, client.address(), err))
			continue
		}
		first := cur.ExternalPort == 0
		cur.ExternalPort, cur.Renewed, cur.Error = ext, now, ""
		cur.Expires = time.Time{}
		if life > 0 {
			cur.Expires = now.Add(life)
			// Renew halfway through, as RFC 6886 advises, so one lost
			// answer still leaves time for another try.
			next = min(next, life/2)
		}
		m.mu.Unlock()
		mapped++
		if first {
			m.log.Info("Port mapping created", "method", client.method(), "port", mp.InternalPort, "external_port", ext,
				"external_ip", ip, "lifetime", life)
		}
	}
	if len(errs) == 0 {
		m.mu.Lock()
		m.st.LastError, m.st.LastErrorAt = "", time.Time{}
		m.mu.Unlock()
		return max(next, time.Second)
	}
	m.fail(errors.Join(errs...))
	m.mu.Lock()
	if mapped == 0 && !slices.ContainsFunc(m.st.Mappings, Mapping.Mapped) {
		// The router may have been replaced or turned the feature off,
		// and nothing is left on it to delete: look for one again next
		// time.
		m.client = nil
		m.st.Method, m.st.Gateway, m.st.ExternalIP = "", "", ""
	}
	m.mu.Unlock()
	return max(min(next, m.retry), time.Second)
}

func (m *Mapper) fail(err error) {
	msg := strings.ReplaceAll(err.Error(), "\n", "; ")
	m.log.Warn("Port mapping failed", "error", msg)
	m.mu.Lock()
	m.st.LastError, m.st.LastErrorAt = msg, time.Now()
	m.mu.Unlock()
}

// localAddrFor is the address of this computer on the way to host: what a
// router must forward to. Dialing UDP sends no packet.
func localAddrFor(host string) (net.IP, error) {
	conn, err := net.Dial("udp", net.JoinHostPort(host, "9"))
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	return conn.LocalAddr().(*net.UDPAddr).IP, nil
}

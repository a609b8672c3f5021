package app

import (
	"net"
	"slices"
	"strings"
)

// LANAddress guesses this computer's address on the home network: an IPv4
// address of an interface that is up, not loopback, preferring private
// ranges (192.168.x.x, 10.x.x.x, 172.16–31.x.x) and skipping the bridges
// that containers and virtual machines add. "" when there is none.
func LANAddress() string {
	ifaces, err := net.Interfaces()
	if err != nil {
		return ""
	}
	var cands []lanCandidate
	for _, ifc := range ifaces {
		if ifc.Flags&net.FlagUp == 0 || ifc.Flags&net.FlagLoopback != 0 {
			continue
		}
		addrs, err := ifc.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			ipn, ok := a.(*net.IPNet)
			if !ok {
				continue
			}
			if ip4 := ipn.IP.To4(); ip4 != nil && ip4.IsGlobalUnicast() {
				cands = append(cands, lanCandidate{ifc.Name, ip4})
			}
		}
	}
	return pickLANAddress(cands)
}

type lanCandidate struct {
	iface string
	ip    net.IP
}

// pickLANAddress ranks candidates: a real interface before a virtual one,
// then a private address before a public one, then 192.168 before 10 before
// 172.16/12 (the usual home router ranges first).
func pickLANAddress(cands []lanCandidate) string {
	rank := func(c lanCandidate) int {
		r := 0
		for _, p := range []string{"docker", "br-", "veth", "virbr", "vboxnet", "vmnet", "tun", "tap", "wg", "zt", "tailscale", "utun"} {
			if strings.HasPrefix(c.iface, p) {
				r += 100
				break
			}
		}
		switch {
		case c.ip[0] == 192 && c.ip[1] == 168:
		case c.ip[0] == 10:
			r++
		case c.ip.IsPrivate():
			r += 2
		default:
			r += 10
		}
		return r
	}
	slices.SortStableFunc(cands, func(a, b lanCandidate) int { return rank(a) - rank(b) })
	if len(cands) == 0 {
		return ""
	}
	return cands[0].ip.String()
}

// Addresses are the URLs Matrix clients can use to reach the running (or,
// when stopped, the configured) server: this computer's first, then the
// home network's. A listener on every network is shown with the guessed
// LAN address.
func (a *App) Addresses() (local string, lan []string) {
	st := a.Status()
	local = st.ClientURL
	var bound []string
	if srv := a.Server(); srv != nil {
		for _, addr := range srv.Addrs() {
			bound = append(bound, addr.String())
		}
	} else {
		bound = a.Config().Listen
	}
	for _, b := range bound {
		host, port, err := net.SplitHostPort(b)
		if err != nil {
			continue
		}
		ip := net.ParseIP(host)
		switch {
		case host == "localhost" || ip != nil && ip.IsLoopback():
			continue
		case host == "" || ip != nil && ip.IsUnspecified():
			if guess := LANAddress(); guess != "" {
				host = guess
			} else {
				continue
			}
		}
		u := "http://" + net.JoinHostPort(host, port)
		if u != local && !slices.Contains(lan, u) {
			lan = append(lan, u)
		}
	}
	return local, lan
}

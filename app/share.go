package app

import (
	"net"
	"net/url"
	"strings"
)

// Reach is who can connect to the server at an address.
type Reach int

// The reaches, narrowest first.
const (
	// ReachThisComputer: only programs on this computer can connect
	// (http://localhost:8008 on a phone is the phone itself).
	ReachThisComputer Reach = iota
	// ReachHomeNetwork: devices on the same home network can connect.
	ReachHomeNetwork
	// ReachInternet: the address is public (public_baseurl names a host
	// on the internet).
	ReachInternet
)

// ShareAddress is the address to give someone for their own device, and
// who can reach it: the public address when public_baseurl names one on
// the internet, else the home-network address when that access is on,
// else this computer's own address (which works nowhere else).
func (a *App) ShareAddress() (string, Reach) {
	if pub := strings.TrimSuffix(a.Config().PublicBaseURL, "/"); pub != "" {
		switch urlReach(pub) {
		case ReachInternet:
			return pub, ReachInternet
		case ReachHomeNetwork:
			return pub, ReachHomeNetwork
		}
	}
	local, lans := a.Addresses()
	if len(lans) > 0 {
		return lans[0], ReachHomeNetwork
	}
	return local, ReachThisComputer
}

// urlReach guesses who can reach a URL from its host: loopback is this
// computer, private addresses and .local names the home network, the rest
// the internet.
func urlReach(u string) Reach {
	p, err := url.Parse(u)
	if err != nil {
		return ReachThisComputer
	}
	host := p.Hostname()
	ip := net.ParseIP(host)
	switch {
	case host == "localhost" || ip != nil && ip.IsLoopback():
		return ReachThisComputer
	case ip != nil && (ip.IsPrivate() || ip.IsLinkLocalUnicast()), strings.HasSuffix(host, ".local"), !strings.Contains(host, ".") && ip == nil:
		return ReachHomeNetwork
	}
	return ReachInternet
}

// InviteLink is the link that opens an invite's page (the code and the
// steps to sign up) on the invitee's device.
func InviteLink(address, code string) string {
	return strings.TrimSuffix(address, "/") + "/invite/" + url.PathEscape(code)
}

// InviteMessage is a message to send the invitee: the link, and what to
// type by hand if they prefer.
func InviteMessage(serverName, address, code string) string {
	return "You are invited to chat with me on " + serverName + " (Matrix).\n" +
		"Open this link on your phone or computer: " + InviteLink(address, code) + "\n" +
		"Or, in Element: Create account, press Edit next to the server name, enter " + address +
		", and give the invite code " + code + " when asked."
}

// EnableHomeNetwork lets devices on the home network connect (the Settings
// tab's switch, in one call): it listens on this computer's home-network
// address too. A running server keeps the old addresses until it restarts.
func (a *App) EnableHomeNetwork() error {
	s := a.Settings()
	if s.LAN {
		return nil
	}
	s.LAN, s.LANAddress = true, LANAddress()
	if srv := a.Server(); s.Port == 0 && srv != nil {
		// "Any free port" (tests, hand-edited files): keep the one the
		// server has, so this computer's address does not change.
		if addrs := srv.Addrs(); len(addrs) > 0 {
			if tcp, ok := addrs[0].(*net.TCPAddr); ok {
				s.Port = tcp.Port
			}
		}
	}
	if err := a.SaveSettings(s); err != nil {
		return err
	}
	a.log.Info("home-network access turned on", "address", s.LANAddress)
	return nil
}

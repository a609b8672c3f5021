package ui

import (
	"fmt"
	"sort"
	"strings"

	"github.com/palpo-im/palpo-desktop/app"
	"github.com/palpo-im/palpo-desktop/p2p/servername"
	"github.com/palpo-im/palpo-desktop/server/portmap"
)

// federationOffText is the Status tab's line while federation is off.
const federationOffText = "Off: this server talks only to its own users"

// maxDestinationLines bounds the servers listed one per line; the ones
// with trouble come first, and the rest are counted.
const maxDestinationLines = 5

// federationText is federation's state in words for people who do not
// know the word: whether other Matrix servers can reach this one, how many
// it talks to, and which are not answering and why.
func federationText(st app.FederationStatus, running bool) string {
	if !st.Enabled && st.P2P == nil {
		return federationOffText
	}
	// A peer-to-peer name has no listener over the internet: nobody could
	// look it up.
	internet := st.Enabled && !servername.IsP2P(st.ServerName)
	if !running {
		switch {
		case internet && st.P2P != nil:
			return "On: other servers can connect on port " + portText(st.Listen) + " once the server runs\n" + p2pText(st.P2P, false)
		case internet:
			return "On: other servers can connect on port " + portText(st.Listen) + " once the server runs"
		}
		return p2pText(st.P2P, false)
	}
	var b strings.Builder
	if internet {
		if st.Addr != "" {
			fmt.Fprintf(&b, "On: other servers connect to this one at %s", st.Addr)
		} else {
			b.WriteString("On, but not listening for other servers")
		}
		if st.PortMapping != nil {
			b.WriteString("\n" + portMappingText(*st.PortMapping))
		}
		if st.P2P != nil {
			b.WriteString("\n")
		}
	}
	if st.P2P != nil {
		b.WriteString(p2pText(st.P2P, true))
	}
	if len(st.Destinations) == 0 {
		if st.P2P != nil {
			// Connected peers are not yet servers sent to.
			b.WriteString("\nNothing sent to other servers yet")
			return b.String()
		}
		b.WriteString("\nNo other server contacted yet")
		return b.String()
	}
	dests := append([]app.DestinationStatus(nil), st.Destinations...)
	retrying := 0
	for _, d := range dests {
		if d.RetryCount > 0 {
			retrying++
		}
	}
	fmt.Fprintf(&b, "\n%s", plural(len(dests), "server"))
	switch retrying {
	case 0:
		b.WriteString(", all answering")
	default:
		fmt.Fprintf(&b, ", %d waiting to retry", retrying)
	}
	// Trouble first, then what is still waiting, then the rest; by name
	// within each.
	rank := func(d app.DestinationStatus) int {
		switch {
		case d.RetryCount > 0:
			return 0
		case d.Queued > 0:
			return 1
		}
		return 2
	}
	sort.SliceStable(dests, func(i, j int) bool {
		if ri, rj := rank(dests[i]), rank(dests[j]); ri != rj {
			return ri < rj
		}
		return dests[i].Name < dests[j].Name
	})
	for i, d := range dests {
		if i == maxDestinationLines {
			fmt.Fprintf(&b, "\n…and %d more", len(dests)-i)
			break
		}
		b.WriteString("\n• " + destinationText(d))
	}
	return b.String()
}

// portMappingText is what the home router was asked to forward, in one
// line: the ports forwarded (and the router's internet address), or why
// not.
func portMappingText(pm portmap.Status) string {
	var done, failed []string
	for _, m := range pm.Mappings {
		if m.Mapped() {
			if m.ExternalPort != m.InternalPort {
				done = append(done, fmt.Sprintf("%d (as %d)", m.InternalPort, m.ExternalPort))
			} else {
				done = append(done, fmt.Sprint(m.InternalPort))
			}
		} else {
			failed = append(failed, fmt.Sprint(m.InternalPort))
		}
	}
	switch {
	case len(done) > 0 && len(failed) == 0:
		s := "Router forwards port " + strings.Join(done, ", ")
		if pm.ExternalIP != "" {
			s += " from " + pm.ExternalIP
		}
		return s
	case len(done) > 0:
		return "Router forwards port " + strings.Join(done, ", ") + " but not " + strings.Join(failed, ", ") + ": " + pm.LastError
	case pm.LastError != "":
		return "Router did not forward the ports: " + pm.LastError + " (forward them in the router's settings)"
	}
	return "Asking the router to forward the ports…"
}

// destinationText is one server: how much it is owed, and its trouble.
func destinationText(d app.DestinationStatus) string {
	s := d.Name + ": "
	switch {
	case d.Queued > 0:
		s += plural(d.Queued, "update") + " waiting"
	default:
		s += "up to date"
	}
	if d.RetryCount > 0 {
		if !d.NextRetry.IsZero() {
			// "Today at 15:04" reads "today at 15:04" mid-sentence.
			when := timeText(d.NextRetry)
			s += ", next try " + strings.ToLower(when[:1]) + when[1:]
		}
		if d.LastError != "" {
			s += " (last error: " + sendErrorText(d.LastError) + ")"
		}
	}
	return s
}

// sendErrorText turns a sending error into a few words: the common causes
// said plainly, anything else as its last part (the address and request
// before it mean little to the reader), bounded.
func sendErrorText(msg string) string {
	lower := strings.ToLower(msg)
	switch {
	case strings.Contains(lower, "connection refused"):
		return "the server refused the connection"
	case strings.Contains(lower, "no such host"):
		return "no server found under that name"
	case strings.Contains(lower, "certificate"):
		return "its security certificate was not accepted"
	case strings.Contains(lower, "timeout"), strings.Contains(lower, "deadline exceeded"):
		return "no answer in time"
	case strings.Contains(lower, "connection reset"), strings.Contains(lower, "eof"):
		return "the connection was cut"
	case strings.Contains(lower, "network is unreachable"), strings.Contains(lower, "no route to host"):
		return "the server cannot be reached from this network"
	}
	if i := strings.LastIndex(msg, ": "); i >= 0 && i+2 < len(msg) {
		msg = msg[i+2:]
	}
	const limit = 120
	if r := []rune(msg); len(r) > limit {
		msg = string(r[:limit]) + "…"
	}
	return msg
}

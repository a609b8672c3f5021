package config

import (
	"fmt"
	"net/url"
	"strings"
)

// Support is what /.well-known/matrix/support tells people who need help
// with this server (or want to appeal a locked account): who to contact and
// a page to read. With neither set the endpoint answers 404, as the spec says.
type Support struct {
	// Contacts are ways to reach the server's administrators.
	Contacts []SupportContact `toml:"contacts"`
	// Page is the URL of a help page for this server; empty for none.
	Page string `toml:"support_page"`
}

// SupportContact is one way to reach an administrator.
type SupportContact struct {
	// MatrixID is an administrator's Matrix user ID, possibly on another
	// server so that they stay reachable when this one is down.
	MatrixID string `toml:"matrix_id"`
	// EmailAddress is an administrator's email address.
	EmailAddress string `toml:"email_address"`
	// Role is "m.role.admin" (any question) or "m.role.security"
	// (sensitive reports), or a namespaced role of one's own.
	Role string `toml:"role"`
}

// Configured reports whether there is anything to tell.
func (s Support) Configured() bool { return len(s.Contacts) > 0 || s.Page != "" }

func (s Support) validate() error {
	for i, c := range s.Contacts {
		key := fmt.Sprintf("support.contacts[%d]", i)
		if c.MatrixID == "" && c.EmailAddress == "" {
			return fmt.Errorf("%s: needs a matrix_id or an email_address (or both)", key)
		}
		if c.MatrixID != "" {
			local, server, ok := strings.Cut(strings.TrimPrefix(c.MatrixID, "@"), ":")
			if !strings.HasPrefix(c.MatrixID, "@") || !ok || local == "" || ValidateServerName(server) != nil {
				return fmt.Errorf("%s.matrix_id %q: must be a full user ID such as \"@admin:example.org\"", key, c.MatrixID)
			}
		}
		if c.EmailAddress != "" {
			local, domain, ok := strings.Cut(c.EmailAddress, "@")
			if !ok || local == "" || domain == "" || strings.ContainsAny(c.EmailAddress, " \t") {
				return fmt.Errorf("%s.email_address %q: must be an email address such as \"admin@example.org\"", key, c.EmailAddress)
			}
		}
		if c.Role == "" {
			return fmt.Errorf("%s.role: must be set, usually \"m.role.admin\" or \"m.role.security\"", key)
		}
	}
	if s.Page != "" {
		u, err := url.Parse(s.Page)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("support.support_page %q: must be an http:// or https:// URL, or empty", s.Page)
		}
	}
	return nil
}

// ServerNotices configures the server notices room: the room in which the
// server's administrators send a user official messages (through the admin
// API's send_server_notice), from a user of its own that nobody logs in as.
type ServerNotices struct {
	// Localpart is the notices user's name (@server:example.org); nobody
	// may register it.
	Localpart string `toml:"system_user_localpart"`
	// DisplayName is the notices user's display name.
	DisplayName string `toml:"system_user_display_name"`
	// RoomName is the name of each user's notices room.
	RoomName string `toml:"room_name"`
}

func defaultServerNotices() ServerNotices {
	return ServerNotices{Localpart: "server", DisplayName: "Server Notices", RoomName: "Server Notices"}
}

func (n ServerNotices) validate() error {
	if n.Localpart == "" {
		return fmt.Errorf("server_notices.system_user_localpart: must not be empty; the default is \"server\"")
	}
	for _, r := range n.Localpart {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || strings.ContainsRune("._=-/+", r)) {
			return fmt.Errorf("server_notices.system_user_localpart %q: only lower-case letters, digits and ._=-/+ are allowed", n.Localpart)
		}
	}
	if strings.TrimSpace(n.RoomName) == "" {
		return fmt.Errorf("server_notices.room_name: must not be empty; the default is \"Server Notices\"")
	}
	return nil
}

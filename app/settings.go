package app

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/config"
)

// Settings are the options the desktop app's Settings tab edits. The rest
// of palpo.toml is for people who edit the file.
type Settings struct {
	// Port is where the server listens, on this computer and (with LAN)
	// on the home network.
	Port int
	// LAN lets other devices on the home network connect: the server also
	// listens on LANAddress (or on every network when LANAddress is
	// "0.0.0.0", which a hand-edited file may say).
	LAN        bool
	LANAddress string
	// MaxUploadBytes is the largest file anyone may upload.
	MaxUploadBytes int64
	// CustomListen is set when palpo.toml's listen list has a shape the
	// tab cannot show (more addresses, different ports, IPv6…): then Port
	// and LAN are only informative, and SaveSettings leaves listen alone.
	CustomListen bool
	Listen       []string
}

// ErrCustomListen is SaveSettings' answer to a Port or LAN change when the
// listen list was written by hand in a shape the Settings tab cannot show.
var ErrCustomListen = errors.New("the listen addresses in palpo.toml were set by hand; change them there")

// Settings reads the current settings from the loaded config.
func (a *App) Settings() Settings {
	cfg := a.Config()
	s := Settings{MaxUploadBytes: cfg.Media.MaxUploadBytes, Listen: slices.Clone(cfg.Listen)}
	s.Port, s.LAN, s.LANAddress, s.CustomListen = parseListen(cfg.Listen)
	return s
}

// parseListen recognises the two shapes the Settings tab writes:
// ["127.0.0.1:P"] and ["127.0.0.1:P", "LAN:P"]; anything else is custom.
// A lone wildcard or LAN address also counts as LAN access.
func parseListen(listen []string) (port int, lan bool, lanAddr string, custom bool) {
	type hp struct {
		ip   net.IP
		host string
		port int
	}
	var addrs []hp
	for _, l := range listen {
		host, p, err := net.SplitHostPort(l)
		n, perr := strconv.Atoi(p)
		if err != nil || perr != nil {
			return 0, false, "", true
		}
		addrs = append(addrs, hp{net.ParseIP(host), host, n})
	}
	if len(addrs) == 0 {
		return 0, false, "", true
	}
	port = addrs[0].port
	loopback := func(a hp) bool { return a.host == "localhost" || a.ip.To4() != nil && a.ip.IsLoopback() }
	switch {
	case len(addrs) == 1 && loopback(addrs[0]):
		return port, false, "", false
	case len(addrs) == 1 && (addrs[0].host == "" || addrs[0].ip != nil && addrs[0].ip.To4() != nil):
		// "0.0.0.0:8008" or ":8008" (every network) or a lone LAN address.
		h := addrs[0].host
		if h == "" {
			h = "0.0.0.0"
		}
		return port, true, h, addrs[0].host != "" && !addrs[0].ip.IsUnspecified()
	case len(addrs) == 2 && loopback(addrs[0]) && addrs[1].port == port && addrs[1].ip != nil && addrs[1].ip.To4() != nil && !loopback(addrs[1]):
		return port, true, addrs[1].host, false
	}
	return port, len(addrs) > 1, "", true
}

// listenFor builds the listen list for a port, with or without the LAN.
func listenFor(port int, lanAddr string) []string {
	p := strconv.Itoa(port)
	if ip := net.ParseIP(lanAddr); ip != nil && ip.IsUnspecified() {
		// Every network, this computer included; 127.0.0.1 beside it
		// would be the same port twice.
		return []string{net.JoinHostPort(lanAddr, p)}
	}
	out := []string{net.JoinHostPort("127.0.0.1", p)}
	if lanAddr != "" {
		out = append(out, net.JoinHostPort(lanAddr, p))
	}
	return out
}

// SaveSettings writes changed settings to palpo.toml, keeping its comments
// and everything else in it, and reloads the config. A running server
// keeps the old values until it is restarted (the caller does that).
func (a *App) SaveSettings(s Settings) error {
	old := a.Settings()
	var edits []tomlEdit
	if s.Port != old.Port || s.LAN != old.LAN || (s.LAN && s.LANAddress != old.LANAddress) {
		if old.CustomListen {
			return ErrCustomListen
		}
		if s.Port < 1 || s.Port > 65535 {
			return fmt.Errorf("the port must be a number from 1 to 65535, not %d", s.Port)
		}
		lan := ""
		if s.LAN {
			if lan = s.LANAddress; lan == "" {
				return errors.New("no home-network address was found on this computer, so other devices cannot connect")
			}
		}
		listen := listenFor(s.Port, lan)
		edits = append(edits, tomlEdit{"listen", tomlStrings(listen), func(c *config.Config) bool { return slices.Equal(c.Listen, listen) }})
	}
	if s.MaxUploadBytes != old.MaxUploadBytes {
		if s.MaxUploadBytes < 1 {
			return errors.New("the largest upload must be at least 1 byte")
		}
		n := s.MaxUploadBytes
		edits = append(edits, tomlEdit{"media.max_upload_bytes", tomlInt(n), func(c *config.Config) bool { return c.Media.MaxUploadBytes == n }})
	}
	return a.editConfig(edits...)
}

// SetRegistrationMode switches who may create accounts
// (config.RegistrationOpen, RegistrationToken or RegistrationClosed). The
// running server keeps the old mode until it restarts.
func (a *App) SetRegistrationMode(mode string) error {
	switch mode {
	case config.RegistrationOpen, config.RegistrationToken, config.RegistrationClosed:
	default:
		return fmt.Errorf("unknown registration mode %q", mode)
	}
	return a.editConfig(tomlEdit{"registration.mode", tomlString(mode), func(c *config.Config) bool { return c.Registration.Mode == mode }})
}

// tomlEdit sets one key; check tells whether the parsed result holds the
// intended value.
type tomlEdit struct {
	key   string
	value string
	check func(*config.Config) bool
}

// editConfig applies edits to palpo.toml as text (tomledit.go), refuses the
// result unless it parses and every edit took, writes it atomically and
// reloads the config.
func (a *App) editConfig(edits ...tomlEdit) error {
	if len(edits) == 0 {
		return nil
	}
	path := filepath.Join(a.dataDir, config.FileName)
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	text := string(data)
	for _, e := range edits {
		if text, err = setTOMLValue(text, e.key, e.value); err != nil {
			return fmt.Errorf("%s cannot be changed automatically (%v); edit %s by hand", e.key, err, path)
		}
	}
	cfg, err := config.Parse(text)
	if err != nil {
		return fmt.Errorf("the new settings are not valid: %w", err)
	}
	for _, e := range edits {
		if !e.check(cfg) {
			return fmt.Errorf("%s is written in a way Palpo cannot change automatically; edit %s by hand", e.key, path)
		}
	}
	if err := writeFileAtomic(path, []byte(text)); err != nil {
		return err
	}
	a.mu.Lock()
	a.cfg = cfg
	a.mu.Unlock()
	return nil
}

// writeFileAtomic replaces path with data: readers (and a crash) see the
// old file or the new one, never half of one. The file stays private.
func writeFileAtomic(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".palpo-*.tmp")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// Older Matrix apps (made before 2024, such as Nheko 0.11 on Debian 12)
// download pictures without signing in, which Matrix has since frozen, and
// do not understand version 12 rooms. One switch lets them work: media
// stay downloadable the old way (unauthenticated_before far in the
// future) and new rooms are version 10, which every app understands.
const (
	olderAppsMediaCutoff = "9999-12-31T23:59:59Z"
	olderAppsRoomVersion = string(id.RoomV10)
)

// OlderApps tells whether the Older Matrix apps switch is on: both of its
// settings hold.
func (a *App) OlderApps() bool {
	cfg := a.Config()
	cutoff, ok := cfg.Media.UnauthenticatedCutoff()
	return ok && cutoff.After(time.Now().AddDate(100, 0, 0)) && cfg.DefaultRoomVersion == olderAppsRoomVersion
}

// SetOlderApps turns the Older Matrix apps switch on or off in
// palpo.toml. A running server keeps the old values until it restarts
// (the caller does that).
func (a *App) SetOlderApps(on bool) error {
	cutoff, version := "", config.Default().DefaultRoomVersion
	if on {
		cutoff, version = olderAppsMediaCutoff, olderAppsRoomVersion
	}
	err := a.editConfig(
		tomlEdit{"media.unauthenticated_before", tomlString(cutoff), func(c *config.Config) bool { return c.Media.UnauthenticatedBefore == cutoff }},
		tomlEdit{"default_room_version", tomlString(version), func(c *config.Config) bool { return c.DefaultRoomVersion == version }},
	)
	if err == nil {
		a.log.Info("older Matrix apps switch changed", "on", on, "default_room_version", version, "unauthenticated_media", on)
	}
	return err
}

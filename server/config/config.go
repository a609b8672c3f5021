// Package config holds Palpo's typed configuration: the TOML file in the data
// directory, its defaults (which serve a personal server on this computer) and
// the validation that turns a bad value into a message saying how to fix it.
package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"
)

// FileName is the name of the config file inside the data directory.
const FileName = "palpo.toml"

// Config is the whole of palpo.toml. Every field has a default (see Default)
// and a comment in the example config (see Example).
type Config struct {
	// ServerName is the domain part of every user ID and room alias. It can
	// never change once users or rooms exist.
	ServerName string `toml:"server_name"`
	// PublicBaseURL is the address clients are told to use. Empty means
	// "derived from the first listen address".
	PublicBaseURL string `toml:"public_baseurl"`
	// Listen lists host:port pairs for the client (and later federation) API.
	Listen []string `toml:"listen"`
	// DefaultRoomVersion is the version of rooms created without a
	// room_version in the request: one of RoomVersions.
	DefaultRoomVersion string `toml:"default_room_version"`

	Registration Registration `toml:"registration"`
	Auth         Auth         `toml:"auth"`
	OAuth        OAuth        `toml:"oauth"`
	RateLimits   RateLimits   `toml:"rate_limits"`
	HTTP         HTTP         `toml:"http"`
	Database     Database     `toml:"database"`
	Log          Log          `toml:"log"`
	Media        Media        `toml:"media"`
	Backup       Backup       `toml:"backup"`

	UserDirectory UserDirectory `toml:"user_directory"`

	Support       Support       `toml:"support"`
	ServerNotices ServerNotices `toml:"server_notices"`

	Federation Federation `toml:"federation"`
	HTTPS      HTTPS      `toml:"https"`
	P2P        P2P        `toml:"p2p"`
}

// RoomVersions are the room versions default_room_version may name: those
// Palpo creates (rooms.SupportedRoomVersions; a test there keeps the two
// lists equal). The config cannot import the rooms package, which depends on
// storage and much else.
var RoomVersions = []string{"1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12"}

// UserDirectory configures who the user directory (the "start chat" search)
// finds.
type UserDirectory struct {
	// SearchAllUsers lets everyone find every local account. Off, users
	// find those who share a room with them and the members of public
	// rooms, as the spec requires at the least.
	SearchAllUsers bool `toml:"search_all_users"`
}

// Registration modes.
const (
	RegistrationOpen   = "open"   // anyone who reaches the server may register
	RegistrationToken  = "token"  // only with an invite (registration token)
	RegistrationClosed = "closed" // only the owner creates accounts
)

// Registration configures who may create accounts and how.
type Registration struct {
	Mode string `toml:"mode"`
	// MinPasswordLength is the shortest password accepted.
	MinPasswordLength int `toml:"min_password_length"`
	// ReservedUsernames are regular expressions; a user name matching one
	// can only be created by an admin (M_EXCLUSIVE otherwise).
	ReservedUsernames []string `toml:"reserved_usernames"`
	// SharedSecret enables Synapse-compatible shared-secret registration
	// (/_synapse/admin/v1/register) when not empty.
	SharedSecret string `toml:"shared_secret"`
}

// Auth configures tokens.
type Auth struct {
	// AccessTokenLifetimeSeconds applies to clients that ask for refresh
	// tokens; other clients' access tokens live until logout.
	AccessTokenLifetimeSeconds int `toml:"access_token_lifetime_seconds"`
	// LoginTokenLifetimeSeconds is how long an m.login.token stays valid.
	LoginTokenLifetimeSeconds int `toml:"login_token_lifetime_seconds"`
}

// OAuth configures the built-in OAuth 2.0 authorization server (the
// spec's "OAuth 2.0 API"), through which Element X signs in and signs up.
type OAuth struct {
	// Enabled serves /auth_metadata, the OAuth endpoints and the sign-in
	// pages, and advertises spec v1.15 at /versions. Password login keeps
	// working either way.
	Enabled bool `toml:"enabled"`
}

// RateLimits bound how fast one address or account may try logins and
// registrations: Burst attempts at once, then one per PerSecond⁻¹ seconds.
type RateLimits struct {
	LoginPerAddress    RateLimit `toml:"login_per_address"`
	LoginPerAccount    RateLimit `toml:"login_failures_per_account"`
	RegisterPerAddress RateLimit `toml:"register_per_address"`
}

// RateLimit is a token bucket.
type RateLimit struct {
	PerSecond float64 `toml:"per_second"`
	Burst     int     `toml:"burst"`
}

// HTTP configures the HTTP front door.
type HTTP struct {
	// MaxRequestBytes bounds every request body except media uploads.
	MaxRequestBytes int64 `toml:"max_request_bytes"`
	// ShutdownTimeoutSeconds is how long in-flight requests get to finish
	// on shutdown before connections are closed.
	ShutdownTimeoutSeconds int `toml:"shutdown_timeout_seconds"`
	// HeaderTimeoutSeconds is how long a client has to send a request's
	// headers; a slower one is disconnected.
	HeaderTimeoutSeconds int `toml:"header_timeout_seconds"`
	// BodyTimeoutSeconds is how long a client has to send a request body
	// (for media uploads: the longest pause between two pieces of it).
	BodyTimeoutSeconds int `toml:"body_timeout_seconds"`
	// IdleTimeoutSeconds is how long a kept-alive connection may wait for
	// its next request.
	IdleTimeoutSeconds int `toml:"idle_timeout_seconds"`
}

// Database configures the embedded SQLite database.
type Database struct {
	// Path of the SQLite file; relative paths are inside the data directory.
	Path string `toml:"path"`
	// Readers is the size of the read-only connection pool.
	Readers int `toml:"readers"`
}

// Log configures logging.
type Log struct {
	Level  string `toml:"level"`  // debug, info, warn, error
	Format string `toml:"format"` // text or json
}

// Default returns the configuration of a personal server on this computer.
func Default() *Config {
	return &Config{
		ServerName: "localhost",
		Listen:     []string{"127.0.0.1:8008"},
		// The spec's recommended default.
		DefaultRoomVersion: "12",
		Registration: Registration{
			Mode:              RegistrationToken,
			MinPasswordLength: 8,
			ReservedUsernames: []string{},
		},
		Auth: Auth{
			AccessTokenLifetimeSeconds: 3600,
			LoginTokenLifetimeSeconds:  120,
		},
		OAuth: OAuth{Enabled: true},
		RateLimits: RateLimits{
			LoginPerAddress:    RateLimit{PerSecond: 0.2, Burst: 10},
			LoginPerAccount:    RateLimit{PerSecond: 0.05, Burst: 5},
			RegisterPerAddress: RateLimit{PerSecond: 0.2, Burst: 15},
		},
		HTTP: HTTP{
			MaxRequestBytes:        1 << 20,
			ShutdownTimeoutSeconds: 10,
			HeaderTimeoutSeconds:   30,
			BodyTimeoutSeconds:     60,
			IdleTimeoutSeconds:     120,
		},
		Database: Database{Path: "palpo.db", Readers: 4},
		Log:      Log{Level: "info", Format: "text"},
		Media:    defaultMedia(),
		Backup:   defaultBackup(),
		Support:  Support{Contacts: []SupportContact{}},

		ServerNotices: defaultServerNotices(),

		Federation: defaultFederation(),
		HTTPS:      defaultHTTPS(),
		P2P:        defaultP2P(),
	}
}

// Load reads a TOML config file on top of the defaults and validates it.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	cfg, err := Parse(string(data))
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return cfg, nil
}

// Parse decodes TOML text on top of the defaults and validates the result.
// Unknown keys are errors: a typo must not silently fall back to a default.
func Parse(text string) (*Config, error) {
	cfg := Default()
	md, err := toml.Decode(text, cfg)
	if err != nil {
		var perr toml.ParseError
		if errors.As(err, &perr) {
			return nil, fmt.Errorf("line %d: %s", perr.Position.Line, perr.Message)
		}
		return nil, err
	}
	if undecoded := md.Undecoded(); len(undecoded) > 0 {
		keys := make([]string, len(undecoded))
		for i, k := range undecoded {
			keys[i] = k.String()
		}
		return nil, fmt.Errorf("unknown key %s: check the spelling against `palpo config example`", strings.Join(keys, ", "))
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// Validate checks every value and names the key and the fix in its error.
func (c *Config) Validate() error {
	if err := ValidateServerName(c.ServerName); err != nil {
		return fmt.Errorf("server_name %q: %w; use a host name such as \"localhost\" or \"example.org\"", c.ServerName, err)
	}
	if c.PublicBaseURL != "" {
		u, err := url.Parse(c.PublicBaseURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("public_baseurl %q: must be an http:// or https:// URL such as \"https://matrix.example.org\", or empty", c.PublicBaseURL)
		}
	}
	if len(c.Listen) == 0 {
		return errors.New("listen: must name at least one address, such as [\"127.0.0.1:8008\"]")
	}
	for _, addr := range c.Listen {
		host, port, err := net.SplitHostPort(addr)
		if err != nil {
			return fmt.Errorf("listen %q: %v; use host:port such as \"127.0.0.1:8008\"", addr, err)
		}
		if host != "" && net.ParseIP(host) == nil && host != "localhost" {
			return fmt.Errorf("listen %q: host must be an IP address or \"localhost\"", addr)
		}
		if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
			return fmt.Errorf("listen %q: port must be a number from 0 to 65535", addr)
		}
	}
	if !slices.Contains(RoomVersions, c.DefaultRoomVersion) {
		return fmt.Errorf("default_room_version %q: must be one of %s; the default and the spec's recommendation is \"12\", and \"10\" or \"11\" suit older clients",
			c.DefaultRoomVersion, strings.Join(RoomVersions, ", "))
	}
	switch c.Registration.Mode {
	case RegistrationOpen, RegistrationToken, RegistrationClosed:
	default:
		return fmt.Errorf("registration.mode %q: must be \"open\", \"token\" or \"closed\"", c.Registration.Mode)
	}
	if c.Registration.MinPasswordLength < 1 || c.Registration.MinPasswordLength > 128 {
		return fmt.Errorf("registration.min_password_length %d: must be between 1 and 128; the default is 8", c.Registration.MinPasswordLength)
	}
	for _, pattern := range c.Registration.ReservedUsernames {
		if _, err := regexp.Compile(pattern); err != nil {
			return fmt.Errorf("registration.reserved_usernames %q: not a valid regular expression: %v", pattern, err)
		}
	}
	if c.Auth.AccessTokenLifetimeSeconds < 60 {
		return fmt.Errorf("auth.access_token_lifetime_seconds %d: must be at least 60", c.Auth.AccessTokenLifetimeSeconds)
	}
	if c.Auth.LoginTokenLifetimeSeconds < 10 || c.Auth.LoginTokenLifetimeSeconds > 3600 {
		return fmt.Errorf("auth.login_token_lifetime_seconds %d: must be between 10 and 3600", c.Auth.LoginTokenLifetimeSeconds)
	}
	for key, rl := range map[string]RateLimit{
		"login_per_address":          c.RateLimits.LoginPerAddress,
		"login_failures_per_account": c.RateLimits.LoginPerAccount,
		"register_per_address":       c.RateLimits.RegisterPerAddress,
	} {
		if rl.PerSecond <= 0 || rl.Burst < 1 {
			return fmt.Errorf("rate_limits.%s: per_second must be above 0 and burst at least 1", key)
		}
	}
	if c.HTTP.MaxRequestBytes < 64<<10 {
		return fmt.Errorf("http.max_request_bytes %d: must be at least 65536 (one event); the default is 1048576", c.HTTP.MaxRequestBytes)
	}
	if c.HTTP.ShutdownTimeoutSeconds < 0 {
		return fmt.Errorf("http.shutdown_timeout_seconds %d: must not be negative", c.HTTP.ShutdownTimeoutSeconds)
	}
	for key, v := range map[string]int{
		"header_timeout_seconds": c.HTTP.HeaderTimeoutSeconds,
		"body_timeout_seconds":   c.HTTP.BodyTimeoutSeconds,
		"idle_timeout_seconds":   c.HTTP.IdleTimeoutSeconds,
	} {
		if v < 1 {
			return fmt.Errorf("http.%s %d: must be at least 1; the defaults are 30, 60 and 120", key, v)
		}
	}
	if strings.TrimSpace(c.Database.Path) == "" {
		return errors.New("database.path: must not be empty; the default is \"palpo.db\"")
	}
	if c.Database.Readers < 1 || c.Database.Readers > 64 {
		return fmt.Errorf("database.readers %d: must be between 1 and 64; the default is 4", c.Database.Readers)
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("log.level %q: must be one of debug, info, warn, error", c.Log.Level)
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		return fmt.Errorf("log.format %q: must be \"text\" or \"json\"", c.Log.Format)
	}
	if err := c.Media.validate(); err != nil {
		return err
	}
	if err := c.Backup.validate(); err != nil {
		return err
	}
	if err := c.Support.validate(); err != nil {
		return err
	}
	if err := c.ServerNotices.validate(); err != nil {
		return err
	}
	if err := c.Federation.validate(c.ServerName); err != nil {
		return err
	}
	if err := c.HTTPS.validate(c); err != nil {
		return err
	}
	if err := c.P2P.validate(c.ServerName); err != nil {
		return err
	}
	return nil
}

// ValidateServerName checks a server name against the grammar in the spec's
// appendix (hostname, IPv4 literal or bracketed IPv6 literal, optional port).
func ValidateServerName(name string) error {
	if name == "" {
		return errors.New("must not be empty")
	}
	if len(name) > 230 {
		return errors.New("is longer than 230 characters")
	}
	host := name
	if strings.HasPrefix(name, "[") {
		end := strings.Index(name, "]")
		if end < 0 {
			return errors.New("has an unclosed IPv6 bracket")
		}
		if ip := net.ParseIP(name[1:end]); ip == nil || ip.To4() != nil {
			return errors.New("has an invalid IPv6 literal")
		}
		rest := name[end+1:]
		if rest != "" {
			return validatePort(strings.TrimPrefix(rest, ":"), strings.HasPrefix(rest, ":"))
		}
		return nil
	}
	if i := strings.LastIndexByte(name, ':'); i >= 0 {
		host = name[:i]
		if err := validatePort(name[i+1:], true); err != nil {
			return err
		}
	}
	if host == "" {
		return errors.New("has no host name")
	}
	for _, r := range host {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '.') {
			return fmt.Errorf("contains %q; only letters, digits, '-' and '.' are allowed", r)
		}
	}
	return nil
}

func validatePort(port string, hadColon bool) error {
	if !hadColon {
		return errors.New("has characters after the IPv6 literal")
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 1 || p > 65535 || port != strconv.Itoa(p) {
		return fmt.Errorf("has an invalid port %q", port)
	}
	return nil
}

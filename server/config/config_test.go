package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestExampleIsTheDefault(t *testing.T) {
	cfg, err := Parse(Example)
	if err != nil {
		t.Fatalf("example config does not parse: %v", err)
	}
	if !reflect.DeepEqual(cfg, Default()) {
		t.Fatalf("example config differs from defaults:\nexample: %+v\ndefault: %+v", cfg, Default())
	}
}

func TestParseOverridesDefaults(t *testing.T) {
	cfg, err := Parse("server_name = \"example.org\"\n[database]\nreaders = 2\n")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ServerName != "example.org" || cfg.Database.Readers != 2 || cfg.Database.Path != "palpo.db" {
		t.Fatalf("unexpected config %+v", cfg)
	}
}

func TestInvalidConfigNamesTheKey(t *testing.T) {
	cases := map[string]string{
		`server_name = "not a name"`:        "server_name",
		`server_name = ""`:                  "server_name",
		`server_name = "example.org:99999"`: "server_name",
		`public_baseurl = "ftp://x"`:        "public_baseurl",
		`listen = []`:                       "listen",
		`listen = ["nonsense"]`:             "listen",
		`listen = ["127.0.0.1:http"]`:       "listen",
		"[http]\nmax_request_bytes = 10":    "http.max_request_bytes",
		"[database]\nreaders = 0":           "database.readers",
		"[database]\npath = \" \"":          "database.path",
		"[log]\nlevel = \"loud\"":           "log.level",
		"[log]\nformat = \"xml\"":           "log.format",
		`sever_name = "typo.org"`:           "sever_name",
		`server_name = 5`:                   "server_name",
		"server_name = \"unterminated":      "line 1",
		"[database]\nreaders = \"many\"":    "readers",
	}
	for text, key := range cases {
		_, err := Parse(text)
		if err == nil {
			t.Errorf("%q: expected an error", text)
			continue
		}
		if !strings.Contains(err.Error(), key) {
			t.Errorf("%q: error %q does not name %q", text, err, key)
		}
	}
}

func TestDefaultRoomVersion(t *testing.T) {
	if cfg := Default(); cfg.DefaultRoomVersion != "12" {
		t.Fatalf("default default_room_version %q, want \"12\"", cfg.DefaultRoomVersion)
	}
	cfg, err := Parse(`default_room_version = "10"`)
	if err != nil || cfg.DefaultRoomVersion != "10" {
		t.Fatalf("default_room_version = \"10\": %+v, %v", cfg, err)
	}
	for _, bad := range []string{`default_room_version = "13"`, `default_room_version = ""`, `default_room_version = "v11"`} {
		_, err := Parse(bad)
		if err == nil {
			t.Errorf("%s: expected an error", bad)
			continue
		}
		// The message names the key and every value allowed.
		for _, want := range append([]string{"default_room_version"}, RoomVersions...) {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("%s: error %q does not name %q", bad, err, want)
			}
		}
	}
	if _, err := Parse(`default_room_version = 11`); err == nil || !strings.Contains(err.Error(), "default_room_version") {
		t.Errorf("a number instead of a string: %v", err)
	}
}

func TestValidServerNames(t *testing.T) {
	for _, name := range []string{"localhost", "example.org", "matrix.example.org:8448", "1.2.3.4", "1.2.3.4:80", "[::1]", "[1234:5678::abcd]:8448"} {
		if err := ValidateServerName(name); err != nil {
			t.Errorf("%q: %v", name, err)
		}
	}
	for _, name := range []string{"", "exa mple.org", "[::1", "[1.2.3.4]", "example.org:", "example.org:0", "ex_ample.org", "[::1]x", "@x"} {
		if err := ValidateServerName(name); err == nil {
			t.Errorf("%q: expected an error", name)
		}
	}
}

func TestLoadNamesTheFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	if err := os.WriteFile(path, []byte(`listen = ["x"]`), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Load(path)
	if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "listen") {
		t.Fatalf("error %v should name the file and the key", err)
	}
	if _, err := Load(filepath.Join(t.TempDir(), "missing.toml")); err == nil {
		t.Fatal("expected an error for a missing file")
	}
}

func TestSupportAndNoticesConfig(t *testing.T) {
	cfg, err := Parse("[[support.contacts]]\nmatrix_id = \"@admin:example.org\"\nrole = \"m.role.admin\"\n[server_notices]\nsystem_user_localpart = \"notices\"\n")
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.Support.Configured() || cfg.Support.Contacts[0].MatrixID != "@admin:example.org" || cfg.ServerNotices.Localpart != "notices" {
		t.Fatalf("unexpected config %+v %+v", cfg.Support, cfg.ServerNotices)
	}
	if Default().Support.Configured() {
		t.Fatal("support is configured by default")
	}
	for text, key := range map[string]string{
		"[[support.contacts]]\nrole = \"m.role.admin\"":                             "support.contacts[0]",
		"[[support.contacts]]\nmatrix_id = \"admin\"\nrole = \"m.role.admin\"":      "support.contacts[0].matrix_id",
		"[[support.contacts]]\nemail_address = \"nobody\"\nrole = \"m.role.admin\"": "support.contacts[0].email_address",
		"[[support.contacts]]\nemail_address = \"a@example.org\"":                   "support.contacts[0].role",
		"[support]\nsupport_page = \"example.org\"":                                 "support.support_page",
		"[server_notices]\nsystem_user_localpart = \"\"":                            "server_notices.system_user_localpart",
		"[server_notices]\nsystem_user_localpart = \"Big Name\"":                    "server_notices.system_user_localpart",
		"[server_notices]\nroom_name = \" \"":                                       "server_notices.room_name",
	} {
		if _, err := Parse(text); err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("%q: error %v does not name %q", text, err, key)
		}
	}
}

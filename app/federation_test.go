package app

import (
	"context"
	"testing"
)

// With federation off (the default) the status says so, running or not;
// turned on in palpo.toml, a stopped server shows where it will listen.
func TestFederationStatus(t *testing.T) {
	a := openTestApp(t, `listen = ["127.0.0.1:0"]`)
	ctx := context.Background()
	st, err := a.FederationStatus(ctx)
	if err != nil || st.Enabled || st.Listen != "" || st.Addr != "" || len(st.Destinations) != 0 || st.ServerName != "localhost" {
		t.Fatalf("stopped, federation off: %+v %v", st, err)
	}
	if err := a.Start(); err != nil {
		t.Fatal(err)
	}
	st, err = a.FederationStatus(ctx)
	if err != nil || st.Enabled || st.Addr != "" || st.Destinations == nil || len(st.Destinations) != 0 {
		t.Fatalf("running, federation off: %+v %v", st, err)
	}
	if err := a.Stop(); err != nil {
		t.Fatal(err)
	}

	on := openTestApp(t, `server_name = "palpo.example.org"
listen = ["127.0.0.1:0"]
[federation]
enabled = true
listen = "0.0.0.0:8448"
tls_cert_file = "fullchain.pem"
tls_key_file = "privkey.pem"
`)
	st, err = on.FederationStatus(ctx)
	if err != nil || !st.Enabled || st.Listen != "0.0.0.0:8448" || st.Addr != "" || st.ServerName != "palpo.example.org" {
		t.Fatalf("stopped, federation on: %+v %v", st, err)
	}
}

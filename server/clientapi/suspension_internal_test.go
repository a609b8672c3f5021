package clientapi

import (
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/palpo-im/palpo-desktop/server/config"
	"github.com/palpo-im/palpo-desktop/server/httpapi"
	"github.com/palpo-im/palpo-desktop/server/media"
)

// TestModerationRoutesExist: the lock and suspension rules name routes by
// their patterns, so a renamed route or wildcard would silently escape
// them. Every pattern they name must be one the client API serves.
func TestModerationRoutesExist(t *testing.T) {
	rt := httpapi.NewRouter(slog.New(slog.DiscardHandler), 1<<20)
	log := slog.New(slog.DiscardHandler)
	// Registering touches no service but media's upload limit.
	Register(rt, Deps{Media: media.New(nil, config.Default(), t.TempDir(), log)})
	served := map[string]bool{}
	for _, r := range rt.Routes() {
		req := &http.Request{Method: r.Method, Pattern: r.Path}
		if strings.HasPrefix(r.Path, "/_matrix/client/") {
			served[routeKey(req)] = true
		}
	}
	var named []string
	for _, m := range []map[string]bool{lockedAllowed, suspendedForbidden, joinRoutes} {
		for k := range m {
			named = append(named, k)
		}
	}
	named = append(named, redactRoute)
	for _, k := range named {
		if !served[k] {
			t.Errorf("%q is not a client API route", k)
		}
	}
}

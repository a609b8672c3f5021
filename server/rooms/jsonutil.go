package rooms

import (
	jsonv1 "encoding/json"

	"maunium.net/go/mautrix/crypto/canonicaljson"
)

// jsonUnmarshal decodes event content with encoding/json, whose leniency
// (unknown fields ignored) suits reading other people's events.
func jsonUnmarshal(data []byte, v any) error { return jsonv1.Unmarshal(data, v) }

// canonical returns the canonical JSON of raw.
func canonical(raw []byte) ([]byte, error) { return canonicaljson.CanonicalJSON(raw) }

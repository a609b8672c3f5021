package rooms

import (
	"bytes"
	jsonv1 "encoding/json"
	"encoding/json/jsontext"

	"maunium.net/go/mautrix/crypto/canonicaljson"
)

// jsonUnmarshal decodes event content with encoding/json, whose leniency
// (unknown fields ignored) suits reading other people's events.
func jsonUnmarshal(data []byte, v any) error { return jsonv1.Unmarshal(data, v) }

// canonical returns the canonical JSON of raw; duplicate keys and invalid
// UTF-8 are errors.
func canonical(raw []byte) ([]byte, error) {
	v := jsontext.Value(bytes.Clone(raw))
	if err := canonicaljson.Canonicalize(&v); err != nil {
		return nil, err
	}
	return v, nil
}

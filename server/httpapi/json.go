package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"unicode/utf8"

	"maunium.net/go/mautrix"
)

// WriteJSON writes v as a JSON response with the given status.
func WriteJSON(w http.ResponseWriter, status int, v any) error {
	body, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode response: %w", err)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(body)
	return nil
}

// ReadJSON decodes the request body into v, answering the spec's errors:
// M_TOO_LARGE past the route's body limit, M_NOT_JSON when the body is not
// JSON at all (or is empty), and M_BAD_JSON when it is JSON of the wrong
// shape (not an object, or a field of the wrong type).
func ReadJSON(r *http.Request, v any) error {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		var maxBytes *http.MaxBytesError
		if errors.As(err, &maxBytes) {
			return errTooLarge(maxBytes.Limit)
		}
		if errors.Is(err, errBodyTimeout) {
			return errBodyTimeout
		}
		return mautrix.MBadJSON.WithMessage("Could not read the request body")
	}
	return DecodeJSON(body, v)
}

// DecodeJSON is ReadJSON for a body already in memory. JSON is UTF-8 (RFC
// 8259): a body with invalid UTF-8 is not JSON (as Synapse answers), rather
// than decoded with its bad bytes silently replaced.
func DecodeJSON(body []byte, v any) error {
	if len(body) == 0 || !utf8.Valid(body) || !json.Valid(body) {
		return mautrix.MNotJSON.WithMessage("Content not JSON.")
	}
	if err := json.Unmarshal(body, v); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) {
			if typeErr.Field != "" {
				return mautrix.MBadJSON.WithMessage(fmt.Sprintf("Field %q must be of type %s", typeErr.Field, jsonTypeName(typeErr.Type.Kind().String())))
			}
			return mautrix.MBadJSON.WithMessage("Request body must be a JSON object")
		}
		return mautrix.MBadJSON.WithMessage(err.Error())
	}
	return nil
}

func jsonTypeName(kind string) string {
	switch kind {
	case "struct", "map":
		return "object"
	case "slice", "array":
		return "array"
	case "int", "int8", "int16", "int32", "int64", "uint", "uint8", "uint16", "uint32", "uint64", "float32", "float64":
		return "number"
	case "bool":
		return "boolean"
	}
	return kind
}

// IsJSONObject tells whether a valid JSON value is an object (to-device
// contents, for instance, must be).
func IsJSONObject(raw []byte) bool {
	for _, b := range raw {
		switch b {
		case ' ', '\t', '\r', '\n':
			continue
		}
		return b == '{'
	}
	return false
}

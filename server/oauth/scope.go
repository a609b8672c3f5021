package oauth

import (
	"strings"

	"maunium.net/go/mautrix/id"
)

// Scope tokens (spec: "Allocated scope tokens"). The unstable forms from
// MSC2967 are what clients written before v1.15 ask for; they mean the same.
const (
	scopeAPI            = "urn:matrix:client:api:*"
	scopeDevicePrefix   = "urn:matrix:client:device:"
	scopeAPIMSC         = "urn:matrix:org.matrix.msc2967.client:api:*"
	scopeDevicePrefixMS = "urn:matrix:org.matrix.msc2967.client:device:"
	scopeMatrixPrefix   = "urn:matrix:"
)

// maxDeviceIDLength bounds a client-chosen device ID.
const maxDeviceIDLength = 255

// grantedScope is a checked scope: the device it allocates and the scope
// string granted (the requested tokens Palpo understands, in their order).
type grantedScope struct {
	DeviceID id.DeviceID
	Scope    string
}

// parseScope checks a requested scope: full API access and exactly one
// device, whose ID the client chose (spec: "Device ID allocation"). Tokens
// outside the Matrix namespace (such as OpenID Connect's "openid") are not
// granted and left out of the answer, as RFC 6749 section 3.3 allows;
// unknown Matrix tokens are refused.
func parseScope(scope string) (*grantedScope, *Error) {
	var g grantedScope
	var granted []string
	api := false
	for _, tok := range strings.Fields(scope) {
		switch {
		case tok == scopeAPI || tok == scopeAPIMSC:
			api = true
		case strings.HasPrefix(tok, scopeDevicePrefix) || strings.HasPrefix(tok, scopeDevicePrefixMS):
			dev := strings.TrimPrefix(strings.TrimPrefix(tok, scopeDevicePrefix), scopeDevicePrefixMS)
			if g.DeviceID != "" {
				return nil, oauthError(errInvalidScope, "The scope must name exactly one device")
			}
			if !validDeviceID(dev) {
				return nil, oauthError(errInvalidScope, "The device ID must be 1 to 255 of the characters A-Z a-z 0-9 - . _ ~")
			}
			g.DeviceID = id.DeviceID(dev)
		case strings.HasPrefix(tok, scopeMatrixPrefix):
			return nil, oauthError(errInvalidScope, "Unknown scope "+tok)
		default:
			continue
		}
		granted = append(granted, tok)
	}
	if !api {
		return nil, oauthError(errInvalidScope, "The scope must include "+scopeAPI)
	}
	if g.DeviceID == "" {
		return nil, oauthError(errInvalidScope, "The scope must include "+scopeDevicePrefix+"<device_id>")
	}
	g.Scope = strings.Join(granted, " ")
	return &g, nil
}

// validDeviceID accepts RFC 3986's unreserved characters, which the spec
// asks clients to use; other characters could break the scope string or
// the URLs device IDs appear in.
func validDeviceID(d string) bool {
	if d == "" || len(d) > maxDeviceIDLength {
		return false
	}
	for _, c := range []byte(d) {
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~') {
			return false
		}
	}
	return true
}

package accounts

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/storage"
)

// Profile errors the spec defines (v1.16) that mautrix does not.
var (
	MProfileTooLarge = mautrix.RespError{ErrCode: "M_PROFILE_TOO_LARGE", StatusCode: http.StatusBadRequest}
	MKeyTooLarge     = mautrix.RespError{ErrCode: "M_KEY_TOO_LARGE", StatusCode: http.StatusBadRequest}
)

// Profile limits: the spec's 64 KiB in all and 255-byte keys. The display
// name and avatar URL limits are Synapse's, and matter because both are
// copied into the user's membership event in every room they are in.
const (
	maxProfileBytes      = 64 * 1024
	maxProfileKeyBytes   = 255
	maxDisplayNameLength = 256 // characters
	maxAvatarURLLength   = 1000
	// ProfileTimeZone is the spec's time zone field (v1.16).
	ProfileTimeZone = "m.tz"
)

// profileKeyRE is the spec's grammar for profile keys: the two historical
// fields or a namespaced identifier (which m.tz is). The spec's pattern omits
// '-', but the Common Namespaced Identifier Grammar it refers to allows it.
var profileKeyRE = regexp.MustCompile(`^(avatar_url|displayname|[a-z][a-z0-9_-]*(\.[a-z][a-z0-9_-]*)+)$`)

// ValidateProfileKey checks a profile field name.
func ValidateProfileKey(key string) error {
	if len(key) > maxProfileKeyBytes {
		return MKeyTooLarge.WithMessage(fmt.Sprintf("Profile key is longer than %d bytes", maxProfileKeyBytes))
	}
	if !profileKeyRE.MatchString(key) {
		return mautrix.MInvalidParam.WithMessage("Invalid profile key: use displayname, avatar_url, m.tz or a namespaced key such as com.example.field")
	}
	return nil
}

// canEditProfile tells whether the caller may change target's profile:
// their own, or, for a server admin, any local user's (as Synapse allows).
func (s *Service) canEditProfile(c *Caller, target id.UserID) error {
	if c.UserID == target {
		return nil
	}
	if _, server, err := target.Parse(); c.IsAdmin && err == nil && server == s.serverName {
		return nil
	}
	return mautrix.MForbidden.WithMessage("You cannot change another user's profile")
}

// PutProfileField answers PUT /profile/{userId}/{keyName}: value is the raw
// JSON of the body's keyName property. An empty display name or avatar URL
// removes the field, as clients have long used that to clear them.
func (s *Service) PutProfileField(ctx context.Context, c *Caller, target id.UserID, key string, value json.RawMessage) error {
	if err := s.canEditProfile(c, target); err != nil {
		return err
	}
	if err := ValidateProfileKey(key); err != nil {
		return err
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, value); err != nil {
		return mautrix.MBadJSON.WithMessage("Profile value is not valid JSON")
	}
	stored, err := profileValue(key, compact.Bytes())
	if err != nil {
		return err
	}
	profile, err := s.Profile(ctx, target)
	if err != nil {
		return err
	}
	// The check reads then writes, so two concurrent changes could together
	// pass the limit by one field's size; the limit is there against abuse,
	// not as an exact quota, so that is fine.
	if stored == nil {
		delete(profile, key)
	} else {
		profile[key] = compact.Bytes()
	}
	total, err := json.Marshal(profile)
	if err != nil {
		return fmt.Errorf("measure profile of %s: %w", target, err)
	}
	if len(total) >= maxProfileBytes {
		return MProfileTooLarge.WithMessage(fmt.Sprintf("The profile would be larger than %d bytes", maxProfileBytes))
	}
	return s.SetProfileField(ctx, target, key, stored)
}

// profileValue checks a new value for key and returns what to store: a Go
// string for the string fields (nil when empty: remove the field), or the
// raw JSON for custom fields.
func profileValue(key string, value json.RawMessage) (any, error) {
	if string(value) == "null" {
		// The spec lets servers refuse null; storing it would make clients
		// that read profiles handle a value that means nothing.
		return nil, mautrix.MInvalidParam.WithMessage("null is not a valid profile value; use DELETE to remove a field")
	}
	switch key {
	case storage.ProfileDisplayName, storage.ProfileAvatarURL, ProfileTimeZone:
	default:
		return json.RawMessage(value), nil
	}
	var str string
	if err := json.Unmarshal(value, &str); err != nil {
		return nil, mautrix.MInvalidParam.WithMessage(key + " must be a string")
	}
	switch key {
	case storage.ProfileDisplayName:
		if err := checkDisplayName(str); err != nil {
			return nil, err
		}
	case storage.ProfileAvatarURL:
		// Any string, as Synapse takes it (clients show only mxc:// URIs,
		// and a sytest sets an http:// one); only its length is bounded.
		if len(str) > maxAvatarURLLength {
			return nil, mautrix.MInvalidParam.WithMessage(fmt.Sprintf("avatar_url is too long (at most %d bytes)", maxAvatarURLLength))
		}
	}
	if str == "" {
		return nil, nil
	}
	return str, nil
}

// checkDisplayName bounds a display name's length and refuses control
// characters (NUL, newlines, escapes...): a name is one line of text that
// every client shows beside each message, and a NUL would also be cut or
// refused by other homeservers' databases once federated.
func checkDisplayName(name string) error {
	if utf8.RuneCountInString(name) > maxDisplayNameLength {
		return mautrix.MInvalidParam.WithMessage(fmt.Sprintf("displayname is too long (at most %d characters)", maxDisplayNameLength))
	}
	if strings.ContainsFunc(name, unicode.IsControl) {
		return mautrix.MInvalidParam.WithMessage("displayname must not contain control characters")
	}
	return nil
}

// RemoveProfileField answers DELETE /profile/{userId}/{keyName}; removing
// a field that is not set succeeds.
func (s *Service) RemoveProfileField(ctx context.Context, c *Caller, target id.UserID, key string) error {
	if err := s.canEditProfile(c, target); err != nil {
		return err
	}
	if err := ValidateProfileKey(key); err != nil {
		return err
	}
	if _, err := s.GetUser(ctx, target); err != nil {
		return err
	}
	return s.SetProfileField(ctx, target, key, nil)
}

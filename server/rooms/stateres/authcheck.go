package stateres

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"sync"
	"time"

	"github.com/tidwall/gjson"

	"maunium.net/go/mautrix/federation/pdu"
	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/rooms/authrules"
)

// iterativeAuthChecks is the "Iterative auth checks" algorithm: each event in
// order is checked against the authorisation rules with auth events taken from
// the state built so far and, for keys the state lacks, from the event's own
// auth_events (unless that auth event was rejected). Events that pass replace
// their key in the state; the others are ignored.
func (r *resolver) iterativeAuthChecks(state *overlay, order []id.EventID) error {
	for i, evID := range order {
		if i%64 == 0 {
			if err := r.ctx.Err(); err != nil {
				return err
			}
		}
		evt := r.events[evID]
		if evt.StateKey == nil {
			continue
		}
		authEvents, err := r.authEventsFor(evt, state)
		if err != nil {
			return fmt.Errorf("auth events for %s: %w", evID, err)
		}
		ok, err := r.allowed(evt, authEvents)
		if err != nil {
			return fmt.Errorf("authorise %s: %w", evID, err)
		}
		if ok {
			state.set(pdu.StateKey{Type: evt.Type, StateKey: *evt.StateKey}, evID)
		}
	}
	return nil
}

// authEventsFor picks the auth events to check evt against: for each key the
// auth events selection (server-server API, "Auth events selection") names,
// the event in the state being built, or failing that the event's own auth
// event for that key if it was not rejected.
//
// A state entry is used even if it was once rejected: "Rejected events" says
// events rejected against the state at the event are handled as usual, and an
// entry of the state being built has passed the auth checks of this very
// resolution or is (v2) unconflicted state. Only the fallback to auth_events,
// which are not re-authorised, skips rejected events.
func (r *resolver) authEventsFor(evt *pdu.PDU, state *overlay) ([]*pdu.PDU, error) {
	selection := evt.AuthEventSelection(r.version)
	// Never nil: a nil slice tells eventauth.Authorize to use auth_events.
	out := make([]*pdu.PDU, 0, len(selection))
	var own map[pdu.StateKey]*pdu.PDU
	for _, key := range selection {
		if evID, ok := state.get(key); ok {
			ae, err := r.event(evID)
			if err != nil {
				return nil, err
			}
			out = append(out, ae)
			continue
		}
		if own == nil {
			if err := r.load(evt.AuthEvents); err != nil {
				return nil, err
			}
			own = make(map[pdu.StateKey]*pdu.PDU, len(evt.AuthEvents))
			for _, authID := range evt.AuthEvents {
				ae := r.events[authID]
				if ae.StateKey == nil {
					continue
				}
				k := pdu.StateKey{Type: ae.Type, StateKey: *ae.StateKey}
				if _, dup := own[k]; !dup {
					own[k] = ae
				}
			}
		}
		if ae, ok := own[key]; ok && !ae.InternalMeta.Rejected {
			out = append(out, ae)
		}
	}
	return out, nil
}

// allowed runs the authorisation rules with the given auth events.
// Loader failures abort the resolution instead of counting as a failed check.
func (r *resolver) allowed(evt *pdu.PDU, authEvents []*pdu.PDU) (bool, error) {
	if evt.Type == typeMember {
		if via := id.UserID(gjson.GetBytes(evt.Content, "join_authorised_via_users_server").Str); via != "" {
			trusted, err := withTrustedSignature(r.version, evt, via.Homeserver())
			if err != nil {
				return false, err
			}
			evt = trusted
		}
	}
	r.fetchErr = nil
	err := authrules.Authorize(r.version, evt, authEvents, r.getEvents, trustedKey)
	if r.fetchErr != nil {
		return false, r.fetchErr
	}
	return err == nil, nil
}

// getEvents is eventauth's way to the room version 12 create event.
func (r *resolver) getEvents(ids []id.EventID) ([]*pdu.PDU, error) {
	if err := r.load(ids); err != nil {
		r.fetchErr = err
		return nil, err
	}
	out := make([]*pdu.PDU, len(ids))
	for i, evID := range ids {
		out[i] = r.events[evID]
	}
	return out, nil
}

// Auth rule 5.2 checks the signature of the server named by
// join_authorised_via_users_server. That check does not depend on state, and
// every event that can take part in state resolution passed it when it was
// received ("Rejected events": events rejected against their auth chain do not
// appear in the process). State resolution has no signing keys, so it hands
// eventauth a copy whose signature from that server is replaced by one from a
// process-local key that trustedKey vouches for.
const trustedKeyID = id.KeyID("ed25519:stateres")

var trustedSigningKey = sync.OnceValues(func() (ed25519.PrivateKey, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	return priv, err
})

func withTrustedSignature(version id.RoomVersion, evt *pdu.PDU, server string) (*pdu.PDU, error) {
	priv, err := trustedSigningKey()
	if err != nil {
		return nil, fmt.Errorf("state resolution signing key: %w", err)
	}
	clone := evt.Clone()
	clone.Signatures = make(map[string]map[id.KeyID]string, len(evt.Signatures))
	for s, sigs := range evt.Signatures {
		if s != server {
			clone.Signatures[s] = sigs
		}
	}
	if err := clone.Sign(version, server, trustedKeyID, priv); err != nil {
		return nil, fmt.Errorf("re-sign %s: %w", evt.InternalMeta.EventID, err)
	}
	return clone, nil
}

func trustedKey(_ string, keyID id.KeyID, _ time.Time) (id.SigningKey, time.Time, error) {
	if keyID != trustedKeyID {
		return "", time.Time{}, nil
	}
	priv, err := trustedSigningKey()
	if err != nil {
		return "", time.Time{}, err
	}
	pub := priv.Public().(ed25519.PublicKey)
	return id.SigningKey(base64.RawStdEncoding.EncodeToString(pub)), time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC), nil
}

package syncer

import (
	"fmt"
	"strconv"
	"strings"

	"maunium.net/go/mautrix"
)

// Token is a position in every stream a client follows. Its text form is
// "s" followed by the positions joined with '_', in the order of the
// fields; tokens from older versions with fewer streams stay readable
// (missing streams are 0).
type Token struct {
	Events      int64 // room events (the events table's stream_pos)
	AccountData int64
	Receipts    int64
	Typing      int64
	ToDevice    int64
	DeviceLists int64
	Presence    int64
}

// String is the token's text form, as sent to clients.
func (t Token) String() string {
	vals := []int64{t.Events, t.AccountData, t.Receipts, t.Typing, t.ToDevice, t.DeviceLists, t.Presence}
	parts := make([]string, len(vals))
	for i, v := range vals {
		parts[i] = strconv.FormatInt(v, 10)
	}
	return "s" + strings.Join(parts, "_")
}

// errBadToken answers a since or from that is not one of our tokens.
var errBadToken = mautrix.MInvalidParam.WithMessage("Invalid stream token: start again without one")

// ParseToken reads a token's text form. A sliding sync pos ("N/" and a
// token) is read as its token: the MSC lets clients page /messages from it.
func ParseToken(s string) (Token, error) {
	t, err := ParseHistoryToken(s)
	if err == nil && t.Events < 0 {
		return t, errBadToken
	}
	return t, err
}

// ParseHistoryToken is ParseToken for /messages, whose tokens may point
// into history backfilled from other servers, stored before position 1
// (a negative events position).
func ParseHistoryToken(s string) (Token, error) {
	var t Token
	if _, tok, ok := strings.Cut(s, "/"); ok {
		s = tok
	}
	rest, ok := strings.CutPrefix(s, "s")
	if !ok || rest == "" {
		return t, errBadToken
	}
	parts := strings.Split(rest, "_")
	ptrs := []*int64{&t.Events, &t.AccountData, &t.Receipts, &t.Typing, &t.ToDevice, &t.DeviceLists, &t.Presence}
	if len(parts) > len(ptrs) {
		return t, errBadToken
	}
	for i, p := range parts {
		v, err := strconv.ParseInt(p, 10, 64)
		// Only the events position goes below zero: /messages pages into
		// history backfilled from other servers, stored before position 1.
		if err != nil || v < 0 && i > 0 {
			return t, errBadToken
		}
		*ptrs[i] = v
	}
	return t, nil
}

// After tells whether t is ahead of o in any stream.
func (t Token) After(o Token) bool {
	return t.Events > o.Events || t.AccountData > o.AccountData || t.Receipts > o.Receipts ||
		t.Typing > o.Typing || t.ToDevice > o.ToDevice || t.DeviceLists > o.DeviceLists || t.Presence > o.Presence
}

// Exceeds reports a token from the future: a position beyond what this
// server has written, which means the client's token belongs to another
// (or a reset) database. Typing is in memory and exempt: its positions are
// timestamps, compared only to find what changed.
func (t Token) Exceeds(current Token) error {
	if t.Events > current.Events || t.AccountData > current.AccountData || t.Receipts > current.Receipts ||
		t.ToDevice > current.ToDevice || t.DeviceLists > current.DeviceLists {
		return mautrix.MInvalidParam.WithMessage(fmt.Sprintf("Stream token %s is ahead of this server (%s): start again without one", t, current))
	}
	return nil
}

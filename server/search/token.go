package search

import (
	"encoding/base64"
	"strconv"
	"strings"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"
)

// batch is where a next_batch token resumes a search. Tokens are opaque to
// clients: base64 of "order\ngroup\nkey\nposition\nfloor", like
// Synapse's "group\nkey\ntoken".
type batch struct {
	byRank bool
	// room, when set, restricts the search to one room: the token of a
	// room_id group (the spec's paging "within that group").
	room id.RoomID
	// pos is, by rank, how many matching rows to skip; newest first, the
	// stream position to continue below.
	pos int64
	// floor, by rank, is the oldest stream position ranked (0: all).
	floor int64
}

var errBadBatch = mautrix.MInvalidParam.WithMessage("Invalid next_batch token")

func (b batch) String() string {
	order := "recent"
	if b.byRank {
		order = "rank"
	}
	group, key := "all", ""
	if b.room != "" {
		group, key = "room_id", string(b.room)
	}
	return base64.RawURLEncoding.EncodeToString([]byte(order + "\n" + group + "\n" + key + "\n" + strconv.FormatInt(b.pos, 10) + "\n" + strconv.FormatInt(b.floor, 10)))
}

func parseBatch(s string) (batch, error) {
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return batch{}, errBadBatch
	}
	parts := strings.Split(string(raw), "\n")
	if len(parts) != 5 {
		return batch{}, errBadBatch
	}
	var b batch
	switch parts[0] {
	case "rank":
		b.byRank = true
	case "recent":
	default:
		return batch{}, errBadBatch
	}
	switch {
	case parts[1] == "all" && parts[2] == "":
	case parts[1] == "room_id" && strings.HasPrefix(parts[2], "!"):
		b.room = id.RoomID(parts[2])
	default:
		return batch{}, errBadBatch
	}
	if b.pos, err = strconv.ParseInt(parts[3], 10, 64); err != nil || b.pos < 0 {
		return batch{}, errBadBatch
	}
	if b.floor, err = strconv.ParseInt(parts[4], 10, 64); err != nil || b.floor < 0 || (b.floor > 0 && !b.byRank) {
		return batch{}, errBadBatch
	}
	return b, nil
}

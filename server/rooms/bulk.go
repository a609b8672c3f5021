package rooms

import (
	"context"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// SendMessages sends several message events of one sender into a room in
// one transaction, each built on the previous and authorised as if sent
// alone. It is for imports and benchmarks, where a transaction (and an
// fsync) per event would dominate; clients send one at a time with Send.
func (s *Service) SendMessages(ctx context.Context, sender id.UserID, roomID id.RoomID, evType string, contents [][]byte) ([]id.EventID, error) {
	if evType == event.EventRedaction.Type {
		return nil, mautrix.MForbidden.WithMessage("Use the /redact endpoint to redact events")
	}
	r, err := s.room(ctx, roomID)
	if err != nil {
		return nil, err
	}
	protos := make([]*proto, len(contents))
	for i, c := range contents {
		protos[i] = &proto{Sender: sender, Type: evType, Content: c}
	}
	evs, err := s.sendEvents(ctx, r, protos, false)
	if err != nil {
		return nil, err
	}
	out := make([]id.EventID, len(evs))
	for i, ev := range evs {
		out[i] = ev.ID
	}
	return out, nil
}

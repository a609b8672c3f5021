package syncer

import (
	"context"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
)

// toDeviceLimit is the most to-device messages one sync response carries,
// the spec's recommendation; next_batch then points just past the last
// one, so the next sync returns at once with the rest.
const toDeviceLimit = 100

// toDeviceSection delivers the syncing device's pending messages. A sync
// with a since token acknowledges every message up to the token's
// to-device position, which are deleted; the others stay until a later
// sync acknowledges them, so a response the client never received is sent
// again for the same since.
func (s *Service) toDeviceSection(ctx context.Context, req *Request, since, cur Token, resp *mautrix.RespSync) error {
	if req.Device == "" {
		return nil
	}
	var from int64
	if req.Since != nil {
		from = since.ToDevice
		// Once a request: a long-poll builds again each time it is woken.
		if !req.toDeviceAcked {
			if err := s.db.AckToDevice(ctx, req.User, req.Device, from); err != nil {
				return err
			}
			req.toDeviceAcked = true
		}
	}
	if from >= cur.ToDevice {
		return nil
	}
	msgs, more, err := s.db.ToDeviceEvents(ctx, req.User, req.Device, from, cur.ToDevice, toDeviceLimit)
	if err != nil || len(msgs) == 0 {
		return err
	}
	for _, m := range msgs {
		resp.ToDevice.Events = append(resp.ToDevice.Events, &event.Event{
			Sender:  m.Sender,
			Type:    event.Type{Type: m.Type, Class: event.ToDeviceEventType},
			Content: event.Content{VeryRaw: m.Content},
		})
	}
	if more {
		// Only the to-device position moves back: the other sections
		// already answered up to their own positions in next_batch.
		next, err := ParseToken(resp.NextBatch)
		if err != nil {
			return err
		}
		next.ToDevice = msgs[len(msgs)-1].StreamID
		resp.NextBatch = next.String()
	}
	return nil
}

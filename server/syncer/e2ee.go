package syncer

import (
	"context"
	"slices"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// The end-to-end encryption parts of /sync: the device-list stream
// (device_lists.changed and left), and the device's one-time key counts
// and unused fallback key types. The keys themselves are the e2ee
// service's; this file only reads them.

func (s *Service) e2eeSection(ctx context.Context, req *Request, since, cur Token, resp *mautrix.RespSync) error {
	if req.Device != "" {
		counts, types, err := s.db.DeviceKeyCounts(ctx, req.User, req.Device)
		if err != nil {
			return err
		}
		resp.DeviceOTKCount = mautrix.OTKCount{
			SignedCurve25519: counts[string(id.KeyAlgorithmSignedCurve25519)],
			Curve25519:       counts[string(id.KeyAlgorithmCurve25519)],
		}
		resp.FallbackKeys = make([]id.KeyAlgorithm, 0, len(types))
		for _, t := range types {
			resp.FallbackKeys = append(resp.FallbackKeys, id.KeyAlgorithm(t))
		}
	}
	// Device lists are for incremental syncs only: after an initial sync a
	// client queries the keys of everyone it tracks anyway.
	if req.Since == nil {
		return nil
	}
	changed, left, err := s.DeviceListChanges(ctx, req.User, since, cur)
	if err != nil {
		return err
	}
	resp.DeviceLists = mautrix.DeviceLists{Changed: changed, Left: left}
	return nil
}

// DeviceListChanges returns, for the token range (from, to], the users
// whose device lists user should fetch again (changed) and those user no
// longer shares any room with (left). Changed holds user themself and
// users sharing a room with them whose devices, identity keys or
// cross-signing keys changed, users whose master key user signed, and
// everyone in a room user newly joined or who newly joined (or was
// invited to) one of user's rooms, as the spec's note allows. /sync and
// GET /keys/changes both answer with it.
func (s *Service) DeviceListChanges(ctx context.Context, user id.UserID, from, to Token) (changed, left []id.UserID, err error) {
	changedSet := map[id.UserID]bool{}
	keyChanges, err := s.db.DeviceListChangesFor(ctx, user, from.DeviceLists, to.DeviceLists)
	if err != nil {
		return nil, nil, err
	}
	for _, u := range keyChanges {
		changedSet[u] = true
	}

	leftSet := map[id.UserID]bool{}
	if from.Events < to.Events {
		if err := s.membershipDeviceListChanges(ctx, user, from.Events, to.Events, changedSet, leftSet); err != nil {
			return nil, nil, err
		}
	}
	if len(leftSet) > 0 {
		candidates := make([]id.UserID, 0, len(leftSet))
		for u := range leftSet {
			candidates = append(candidates, u)
		}
		still, err := s.db.SharingRoomWith(ctx, user, candidates)
		if err != nil {
			return nil, nil, err
		}
		for u := range leftSet {
			if still[u] || u == user {
				delete(leftSet, u)
			} else {
				delete(changedSet, u)
			}
		}
	}
	return sortedUsers(changedSet), sortedUsers(leftSet), nil
}

// membershipDeviceListChanges adds the device-list consequences of
// membership changes in the event range (from, to]: rooms user joined
// bring their members into changed, rooms user left make their members
// candidates for left, and so do other users joining or leaving user's
// rooms.
func (s *Service) membershipDeviceListChanges(ctx context.Context, user id.UserID, from, to int64, changed, left map[id.UserID]bool) error {
	own, err := s.db.OwnMemberDeltas(ctx, user, from, to)
	if err != nil {
		return err
	}
	for _, d := range own {
		wasIn, isIn := d.Before == string(event.MembershipJoin), d.After == string(event.MembershipJoin)
		if wasIn == isIn {
			continue
		}
		members, err := s.rooms.JoinedUsers(ctx, d.RoomID)
		if err != nil {
			return err
		}
		if isIn {
			invited, err := s.db.Members(ctx, d.RoomID, string(event.MembershipInvite))
			if err != nil {
				return err
			}
			for _, u := range append(members, invited...) {
				if u != user {
					changed[u] = true
					delete(left, u)
				}
			}
		} else {
			for _, u := range members {
				left[u] = true
			}
		}
	}
	others, err := s.db.RoomMemberDeltas(ctx, user, from, to)
	if err != nil {
		return err
	}
	for _, d := range others {
		wasIn, isIn := sharesDevices(d.Before), sharesDevices(d.After)
		switch {
		case isIn && !wasIn:
			changed[d.UserID] = true
			delete(left, d.UserID)
		case wasIn && !isIn:
			left[d.UserID] = true
		}
	}
	return nil
}

// sharesDevices tells whether a membership makes a user's devices matter
// to the room: members, and the invited and knocking, whom clients may
// encrypt for.
func sharesDevices(membership string) bool {
	switch event.Membership(membership) {
	case event.MembershipJoin, event.MembershipInvite, event.MembershipKnock:
		return true
	}
	return false
}

func sortedUsers(set map[id.UserID]bool) []id.UserID {
	if len(set) == 0 {
		return nil
	}
	out := make([]id.UserID, 0, len(set))
	for u := range set {
		out = append(out, u)
	}
	slices.Sort(out)
	return out
}

// Package notices sends server notices (spec: "Server Notices"): official
// messages from the server's administrators to one user, in a room of that
// user's own made by a system user nobody logs in as. The admin API's
// send_server_notice (Synapse's) drives it.
package notices

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/accounts"
	"github.com/palpo-im/palpo-desktop/server/config"
	"github.com/palpo-im/palpo-desktop/server/rooms"
	"github.com/palpo-im/palpo-desktop/server/storage"
	"github.com/palpo-im/palpo-desktop/server/syncer"
)

// MCannotLeaveServerNoticeRoom is the spec's answer to rejecting the
// invite to a server notices room.
var MCannotLeaveServerNoticeRoom = mautrix.RespError{ErrCode: "M_CANNOT_LEAVE_SERVER_NOTICE_ROOM", StatusCode: http.StatusForbidden}

// Service sends server notices.
type Service struct {
	db       *storage.DB
	accounts *accounts.Service
	rooms    *rooms.Service
	sync     *syncer.Service
	cfg      config.ServerNotices
	system   id.UserID
	log      *slog.Logger

	// mu serialises finding or making notices rooms, so two notices sent
	// at once to a new user make one room, not two.
	mu sync.Mutex
}

// New builds the notices service and subscribes it to new events (to tag
// a notices room when its user joins). Call it before the server serves.
func New(db *storage.DB, acc *accounts.Service, rs *rooms.Service, sy *syncer.Service, cfg config.ServerNotices, log *slog.Logger) *Service {
	s := &Service{db: db, accounts: acc, rooms: rs, sync: sy, cfg: cfg, system: acc.UserID(cfg.Localpart), log: log}
	rs.OnEvent(func(evs []*rooms.Event) {
		for _, ev := range evs {
			s.onEvent(ev)
		}
	})
	return s
}

// SystemUser is the user notices come from.
func (s *Service) SystemUser() id.UserID { return s.system }

// Notice is one notice to send.
type Notice struct {
	To       id.UserID
	Type     string          // "": m.room.message
	StateKey *string         // not nil: a state event
	Content  json.RawMessage // a JSON object
	// TxnID, when not empty, makes a retry with the same ID return the
	// first notice's event instead of sending again. It must already be
	// scoped to the admin's session.
	TxnID string
}

// Send delivers a notice, making the user's notices room (and the system
// user) first if needed, and returns the event's ID.
func (s *Service) Send(ctx context.Context, n Notice) (id.EventID, error) {
	if _, server, err := n.To.Parse(); err != nil || server != s.accounts.ServerName() {
		return "", mautrix.MInvalidParam.WithMessage("Server notices can only be sent to local users")
	}
	u, err := s.db.GetUser(ctx, n.To)
	if errors.Is(err, storage.ErrNotFound) || (err == nil && u.Deactivated) {
		return "", mautrix.MNotFound.WithMessage("User not found")
	}
	if err != nil {
		return "", err
	}
	if n.To == s.system {
		return "", mautrix.MInvalidParam.WithMessage("Cannot send a server notice to the server notices user")
	}
	roomID, err := s.roomFor(ctx, n.To)
	if err != nil {
		return "", err
	}
	evType := n.Type
	if evType == "" {
		evType = event.EventMessage.Type
	}
	if n.StateKey != nil {
		return s.rooms.SetState(ctx, s.system, roomID, evType, *n.StateKey, n.Content)
	}
	return s.rooms.Send(ctx, s.system, "", roomID, evType, n.Content, n.TxnID)
}

// roomFor returns the user's notices room, making one (and inviting the
// user) when there is none they are invited to or joined.
func (s *Service) roomFor(ctx context.Context, user id.UserID) (id.RoomID, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	roomID, err := s.db.ServerNoticeRoom(ctx, user)
	if err == nil {
		m, err := s.rooms.MembershipOf(ctx, roomID, user)
		if err != nil {
			return "", err
		}
		if m == event.MembershipInvite || m == event.MembershipJoin {
			return roomID, nil
		}
		// The user left (or was never let in): as in Synapse, the next
		// notice comes in a new room.
	} else if !errors.Is(err, storage.ErrNotFound) {
		return "", err
	}
	if err := s.ensureSystemUser(ctx); err != nil {
		return "", err
	}
	name := s.cfg.RoomName
	// Everyone but the system user is below the level needed to send
	// anything, so the room reads as official (Synapse does the same).
	roomID, err = s.rooms.CreateRoom(ctx, s.system, &rooms.CreateRoomRequest{
		Preset:                    rooms.PresetPrivateChat,
		Name:                      &name,
		Invite:                    []id.UserID{user},
		PowerLevelContentOverride: map[string]json.RawMessage{"users_default": json.RawMessage(`-10`)},
	})
	if err != nil {
		return "", fmt.Errorf("create server notices room for %s: %w", user, err)
	}
	if err := s.db.SetServerNoticeRoom(ctx, user, roomID); err != nil {
		return "", err
	}
	s.log.Info("server notices room created", "user", user, "room", roomID)
	return roomID, nil
}

// ensureSystemUser creates the notices user the first time it is needed:
// an account without a password, which nobody can log in as. An existing
// account of that name that someone can log in as is refused rather than
// made the owner of every user's notices room.
func (s *Service) ensureSystemUser(ctx context.Context) error {
	if u, err := s.db.GetUser(ctx, s.system); err == nil {
		if u.PasswordHash != "" || u.Deactivated {
			return mautrix.MUnknown.WithStatus(http.StatusInternalServerError).WithMessage(fmt.Sprintf(
				"The server notices user %s is an ordinary account: set [server_notices] localpart to a name no one uses", s.system))
		}
		return nil
	} else if !errors.Is(err, storage.ErrNotFound) {
		return err
	}
	_, err := s.accounts.CreateAccount(ctx, accounts.NewAccount{Localpart: s.cfg.Localpart, ByAdmin: true, DisplayName: s.cfg.DisplayName})
	if err != nil {
		return fmt.Errorf("create server notices user: %w", err)
	}
	return nil
}

// IsNoticeRoom tells whether roomID is user's current notices room.
func (s *Service) IsNoticeRoom(ctx context.Context, user id.UserID, roomID id.RoomID) (bool, error) {
	current, err := s.db.ServerNoticeRoom(ctx, user)
	if errors.Is(err, storage.ErrNotFound) {
		return false, nil
	}
	return err == nil && current == roomID, err
}

// CheckLeave refuses to let a user reject the invite to their notices room,
// as the spec requires; once joined, they may leave.
func (s *Service) CheckLeave(ctx context.Context, user id.UserID, roomID id.RoomID) error {
	notice, err := s.IsNoticeRoom(ctx, user, roomID)
	if err != nil || !notice {
		return err
	}
	m, err := s.rooms.MembershipOf(ctx, roomID, user)
	if err != nil {
		return err
	}
	if m == event.MembershipInvite {
		return MCannotLeaveServerNoticeRoom.WithMessage("You cannot reject this invite: it is to your server notices room")
	}
	return nil
}

// onEvent tags a notices room m.server_notice for its user when they join,
// which is how clients recognise it (spec: "Server Notices"). It is done on
// join rather than at creation because an invited user's sync carries no
// room account data, and a tag set before the join would only show up in a
// later initial sync.
func (s *Service) onEvent(ev *rooms.Event) {
	if ev.Rejected || ev.PDU.Type != event.StateMember.Type || ev.PDU.StateKey == nil {
		return
	}
	user := id.UserID(*ev.PDU.StateKey)
	if ev.PDU.Sender != user || user.Homeserver() != s.accounts.ServerName() {
		return
	}
	var member struct {
		Membership event.Membership `json:"membership"`
	}
	if json.Unmarshal(ev.PDU.Content, &member) != nil || member.Membership != event.MembershipJoin {
		return
	}
	ctx := context.Background()
	notice, err := s.IsNoticeRoom(ctx, user, ev.RoomID)
	if err != nil || !notice {
		return
	}
	if err := s.tag(ctx, user, ev.RoomID); err != nil {
		s.log.Warn("could not tag the server notices room", "user", user, "room", ev.RoomID, "error", err)
	}
}

func (s *Service) tag(ctx context.Context, user id.UserID, roomID id.RoomID) error {
	tags, err := s.sync.RoomTags(ctx, user, roomID)
	if err != nil {
		return err
	}
	if _, ok := tags[string(event.RoomTagServerNotice)]; ok {
		return nil
	}
	tags[string(event.RoomTagServerNotice)] = json.RawMessage(`{}`)
	return s.sync.SetRoomTags(ctx, user, roomID, tags)
}

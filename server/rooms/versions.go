package rooms

import "maunium.net/go/mautrix/id"

// DefaultRoomVersion is the version of new rooms unless a client asks for
// another (the spec's recommended default) or the owner configured another
// (Service.DefaultVersion).
const DefaultRoomVersion = id.RoomV12

// SupportedRoomVersions are the versions Palpo creates and joins: every
// stable version, since old rooms on the network still use versions 1–5
// (their event format is in eventformat.go, their auth rules in authrules).
var SupportedRoomVersions = []id.RoomVersion{
	id.RoomV1, id.RoomV2, id.RoomV3, id.RoomV4, id.RoomV5, id.RoomV6,
	id.RoomV7, id.RoomV8, id.RoomV9, id.RoomV10, id.RoomV11, id.RoomV12,
}

// IsSupportedVersion tells whether Palpo handles a room version.
func IsSupportedVersion(v id.RoomVersion) bool {
	for _, s := range SupportedRoomVersions {
		if s == v {
			return true
		}
	}
	return false
}

// DefaultNewRoomVersion is the version of a new room whose creator asks for
// none.
func (s *Service) DefaultNewRoomVersion() id.RoomVersion {
	if s.DefaultVersion != "" {
		return s.DefaultVersion
	}
	return DefaultRoomVersion
}

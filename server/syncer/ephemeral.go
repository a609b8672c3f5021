package syncer

import (
	"context"

	"maunium.net/go/mautrix"
)

// Scaffolding for the typing and receipts streams, which land in their own
// change: positions and the rooms' ephemeral sections.

func (s *Service) typingPosition() int64 { return 0 }

func (s *Service) ephemeralSection(ctx context.Context, req *Request, since, cur Token, resp *mautrix.RespSync) error {
	return nil
}

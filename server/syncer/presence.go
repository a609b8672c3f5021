package syncer

import (
	"context"

	"maunium.net/go/mautrix"
)

// Scaffolding for the presence stream, which lands in its own change.

func (s *Service) presencePosition(ctx context.Context) (int64, error) { return 0, nil }

func (s *Service) presenceSection(ctx context.Context, req *Request, since, cur Token, resp *mautrix.RespSync) error {
	return nil
}

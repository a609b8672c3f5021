package syncer

import (
	"context"

	"maunium.net/go/mautrix"
)

// Scaffolding for unread notification counts (push rule evaluation), which
// land in their own change.

func (s *Service) unreadCounts(ctx context.Context, req *Request, resp *mautrix.RespSync) error {
	return nil
}

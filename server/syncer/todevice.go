package syncer

import (
	"context"

	"maunium.net/go/mautrix"
)

// Scaffolding for the to-device stream, which lands with end-to-end
// encryption.

func (s *Service) toDevicePosition(ctx context.Context) (int64, error) { return 0, nil }

func (s *Service) toDeviceSection(ctx context.Context, req *Request, since, cur Token, resp *mautrix.RespSync) error {
	return nil
}

package syncer

import (
	"context"

	"maunium.net/go/mautrix"
)

// Scaffolding for device lists and one-time key counts, which land with
// end-to-end encryption.

func (s *Service) deviceListPosition(ctx context.Context) (int64, error) { return 0, nil }

func (s *Service) e2eeSection(ctx context.Context, req *Request, since, cur Token, resp *mautrix.RespSync) error {
	return nil
}

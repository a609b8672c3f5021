package portmap

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackpal/gateway"
)

// discoverNetwork finds the router: NAT-PMP first (one UDP request to the
// default gateway, answered or refused at once by most routers), then
// UPnP IGD by an SSDP search, which takes a few seconds.
func (m *Mapper) discoverNetwork(ctx context.Context) (gatewayClient, error) {
	var errs []error
	gw, err := gateway.DiscoverGateway()
	if err != nil {
		errs = append(errs, fmt.Errorf("NAT-PMP: find the default gateway: %w", err))
	} else {
		n := newNATPMP(gw, m.callTimeout)
		if _, err := n.externalIP(ctx); err != nil {
			errs = append(errs, fmt.Errorf("NAT-PMP at %s: %w", gw, err))
		} else {
			return n, nil
		}
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	u, err := discoverUPnP(ctx)
	if err != nil {
		return nil, errors.Join(append(errs, err)...)
	}
	return u, nil
}

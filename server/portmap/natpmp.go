package portmap

import (
	"context"
	"fmt"
	"net"
	"time"

	natpmp "github.com/jackpal/go-nat-pmp"
)

// natPMP speaks NAT-PMP to one gateway. The library takes no context;
// each call is bounded by the timeout the client is built with instead.
type natPMP struct {
	gateway net.IP
	client  *natpmp.Client
}

func newNATPMP(gateway net.IP, timeout time.Duration) *natPMP {
	return &natPMP{gateway: gateway, client: natpmp.NewClientWithTimeout(gateway, timeout)}
}

func (n *natPMP) method() string  { return MethodNATPMP }
func (n *natPMP) address() string { return n.gateway.String() }

func (n *natPMP) externalIP(context.Context) (string, error) {
	res, err := n.client.GetExternalAddress()
	if err != nil {
		return "", err
	}
	return net.IP(res.ExternalIPAddress[:]).String(), nil
}

func (n *natPMP) add(_ context.Context, internal, external int, lifetime time.Duration) (int, time.Duration, error) {
	res, err := n.client.AddPortMapping("tcp", internal, external, int(lifetime/time.Second))
	if err != nil {
		return 0, 0, err
	}
	if res.MappedExternalPort == 0 || res.PortMappingLifetimeInSeconds == 0 {
		return 0, 0, fmt.Errorf("the router granted no mapping (external port %d, lifetime %ds)", res.MappedExternalPort, res.PortMappingLifetimeInSeconds)
	}
	return int(res.MappedExternalPort), time.Duration(res.PortMappingLifetimeInSeconds) * time.Second, nil
}

// remove asks for lifetime 0, which RFC 6886 (section 3.4) defines as a
// deletion; the external port must then be 0 too.
func (n *natPMP) remove(_ context.Context, internal, _ int) error {
	_, err := n.client.AddPortMapping("tcp", internal, 0, 0)
	return err
}

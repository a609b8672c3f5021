package portmap

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"sync"
	"time"

	"github.com/huin/goupnp"
	"github.com/huin/goupnp/dcps/internetgateway2"
	"github.com/huin/goupnp/soap"
)

// wanConnection is what WANIPConnection:1, WANIPConnection:2 and
// WANPPPConnection:1 clients have in common: the three services an IGD
// offers port mappings through.
type wanConnection interface {
	AddPortMappingCtx(ctx context.Context, remoteHost string, externalPort uint16, protocol string, internalPort uint16,
		internalClient string, enabled bool, description string, leaseDuration uint32) error
	DeletePortMappingCtx(ctx context.Context, remoteHost string, externalPort uint16, protocol string) error
	GetExternalIPAddressCtx(ctx context.Context) (string, error)
}

// upnpIGD speaks UPnP IGD to one router's WAN connection service.
type upnpIGD struct {
	location *url.URL
	conn     wanConnection
	// internalClient is this computer's address as the router sees it.
	internalClient string
	// permanentOnly is set when the router refused a lease duration.
	permanentOnly bool
}

// mappingDescription is what router admin pages list the mapping as.
const mappingDescription = "Palpo Matrix server"

// UPnP error codes (UPnP IGD WANIPConnection:2, section 2.4.16).
const (
	upnpOnlyPermanentLeases = 725
)

func (u *upnpIGD) method() string  { return MethodUPnP }
func (u *upnpIGD) address() string { return u.location.String() }

func (u *upnpIGD) externalIP(ctx context.Context) (string, error) {
	return u.conn.GetExternalIPAddressCtx(ctx)
}

func (u *upnpIGD) add(ctx context.Context, internal, external int, lifetime time.Duration) (int, time.Duration, error) {
	lease := uint32(lifetime / time.Second)
	if u.permanentOnly {
		lease = 0
	}
	err := u.conn.AddPortMappingCtx(ctx, "", uint16(external), "TCP", uint16(internal), u.internalClient, true, mappingDescription, lease)
	if upnpErrorCode(err) == upnpOnlyPermanentLeases && lease != 0 {
		// Older IGDs grant only permanent mappings: take one and delete it
		// at stop instead.
		u.permanentOnly, lease = true, 0
		err = u.conn.AddPortMappingCtx(ctx, "", uint16(external), "TCP", uint16(internal), u.internalClient, true, mappingDescription, 0)
	}
	if err != nil {
		return 0, 0, upnpError(err)
	}
	return external, time.Duration(lease) * time.Second, nil
}

func (u *upnpIGD) remove(ctx context.Context, _, external int) error {
	return upnpError(u.conn.DeletePortMappingCtx(ctx, "", uint16(external), "TCP"))
}

func upnpErrorCode(err error) int {
	var fault *soap.SOAPFaultError
	if errors.As(err, &fault) {
		return fault.Detail.UPnPError.Errorcode
	}
	return 0
}

// upnpError says what a SOAP fault means: its own text is only
// "UPnPError".
func upnpError(err error) error {
	var fault *soap.SOAPFaultError
	if err == nil || !errors.As(err, &fault) {
		return err
	}
	return fmt.Errorf("router refused: UPnP error %d %s", fault.Detail.UPnPError.Errorcode, fault.Detail.UPnPError.ErrorDescription)
}

// upnpAt builds a client for the IGD whose description is at loc (found
// by SSDP, or given by a test), preferring WANIPConnection:2.
func upnpAt(ctx context.Context, loc *url.URL) (*upnpIGD, error) {
	root, err := goupnp.DeviceByURLCtx(ctx, loc)
	if err != nil {
		return nil, err
	}
	var conn wanConnection
	if cs, err := internetgateway2.NewWANIPConnection2ClientsFromRootDevice(root, loc); err == nil && len(cs) > 0 {
		conn = cs[0]
	} else if cs, err := internetgateway2.NewWANIPConnection1ClientsFromRootDevice(root, loc); err == nil && len(cs) > 0 {
		conn = cs[0]
	} else if cs, err := internetgateway2.NewWANPPPConnection1ClientsFromRootDevice(root, loc); err == nil && len(cs) > 0 {
		conn = cs[0]
	} else {
		return nil, fmt.Errorf("the device at %s offers no WAN IP or PPP connection service", loc)
	}
	local, err := localAddrFor(loc.Hostname())
	if err != nil {
		return nil, fmt.Errorf("find this computer's address towards %s: %w", loc.Hostname(), err)
	}
	return &upnpIGD{location: loc, conn: conn, internalClient: local.String()}, nil
}

// discoverUPnP searches the LAN by SSDP (multicast) for internet gateway
// devices, versions 1 and 2 at once, and takes the first that works.
func discoverUPnP(ctx context.Context) (*upnpIGD, error) {
	targets := []string{"urn:schemas-upnp-org:device:InternetGatewayDevice:2", "urn:schemas-upnp-org:device:InternetGatewayDevice:1"}
	var (
		mu   sync.Mutex
		locs []*url.URL
		errs []error
		wg   sync.WaitGroup
	)
	for _, target := range targets {
		wg.Go(func() {
			found, err := goupnp.DiscoverDevicesCtx(ctx, target)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
				return
			}
			for _, d := range found {
				if d.Err == nil && d.Location != nil {
					locs = append(locs, d.Location)
				}
			}
		})
	}
	wg.Wait()
	seen := map[string]bool{}
	for _, loc := range locs {
		if seen[loc.String()] {
			continue
		}
		seen[loc.String()] = true
		u, err := upnpAt(ctx, loc)
		if err == nil {
			return u, nil
		}
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("UPnP: %w", errors.Join(errs...))
	}
	return nil, errors.New("UPnP: no internet gateway device answered the SSDP search")
}

package config

import "fmt"

// PortMapping asks the home router (by NAT-PMP or UPnP IGD) to forward
// the federation port, and the http-01 challenge port when automatic TLS
// uses it, to this computer. Off by default: it changes the router's
// settings, which nobody should find done behind their back, and many
// routers have these protocols turned off anyway.
type PortMapping struct {
	// Enabled turns it on; it takes effect only with federation enabled.
	Enabled bool `toml:"enabled"`
	// Ports are extra TCP ports to forward besides the ones Palpo listens
	// on for federation (such as 443 when another program serves it).
	Ports []int `toml:"ports"`
}

func defaultPortMapping() PortMapping { return PortMapping{Ports: []int{}} }

func (p PortMapping) validate() error {
	for _, port := range p.Ports {
		if port < 1 || port > 65535 {
			return fmt.Errorf("federation.port_mapping.ports: %d is not a port; list TCP port numbers from 1 to 65535 (such as 443), or leave the list empty", port)
		}
	}
	return nil
}

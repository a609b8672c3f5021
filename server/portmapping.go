package server

import (
	"net"
	"strconv"

	"github.com/palpo-im/palpo-desktop/server/config"
	"github.com/palpo-im/palpo-desktop/server/portmap"
)

// PortMapping is the home router port mapper (disabled unless configured).
func (s *Server) PortMapping() *portmap.Mapper { return s.portmap }

// portMappingPorts are the ports other servers and the ACME CA connect to:
// the federation listener's (as bound), the http-01 challenge's when
// automatic TLS uses it, the client API's https listener when on, and any
// extra ones configured.
func (s *Server) portMappingPorts() []portmap.Port {
	var ports []portmap.Port
	listen := s.cfg.Federation.Listen
	if a := s.fed.Addr(); a != nil {
		listen = a.String()
	}
	if p := portOf(listen); p > 0 {
		ports = append(ports, portmap.Port{Name: "federation", Port: p})
	}
	if f := s.cfg.Federation; f.AutoTLS() && f.ACME.HasChallenge(config.ChallengeHTTP01) {
		if p := portOf(f.ACME.HTTPChallengeListen); p > 0 {
			ports = append(ports, portmap.Port{Name: "http-challenge", Port: p})
		}
	}
	if s.cfg.HTTPS.Enabled {
		// From the config: Start holds the lock HTTPSAddr takes.
		if p := portOf(s.cfg.HTTPS.Listen); p > 0 {
			ports = append(ports, portmap.Port{Name: "https", Port: p})
		}
	}
	for _, p := range s.cfg.Federation.PortMapping.Ports {
		ports = append(ports, portmap.Port{Name: "extra", Port: p})
	}
	return ports
}

func portOf(hostport string) int {
	_, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return 0
	}
	p, _ := strconv.Atoi(port)
	return p
}

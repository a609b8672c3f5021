package admin

import "github.com/palpo-im/palpo-desktop/server/portmap"

// portMappingJSON is the "port_mapping" field of the federation status,
// present only when federation.port_mapping is on: what the home router
// forwards to this server, by which protocol, and what went wrong. Times
// are in milliseconds, like the rest of the status.
type portMappingJSON struct {
	// Method is "nat-pmp" or "upnp-igd", null while no router answered.
	Method      *string               `json:"method"`
	Gateway     *string               `json:"gateway"`
	ExternalIP  *string               `json:"external_ip"`
	Mappings    []portMappingPortJSON `json:"mappings"`
	LastError   *string               `json:"last_error"`
	LastErrorTS *int64                `json:"last_error_ts"`
}

type portMappingPortJSON struct {
	Name         string `json:"name"`
	Protocol     string `json:"protocol"`
	InternalPort int    `json:"internal_port"`
	// ExternalPort is null while the port is not mapped.
	ExternalPort *int `json:"external_port"`
	// ExpiresTS is null while not mapped or when the router's mapping is
	// permanent; Palpo renews it before then.
	ExpiresTS *int64  `json:"expires_ts"`
	RenewedTS *int64  `json:"renewed_ts"`
	Error     *string `json:"error"`
}

func portMappingStatus(st *portmap.Status) *portMappingJSON {
	if st == nil {
		return nil
	}
	out := &portMappingJSON{Method: nullable(st.Method), Gateway: nullable(st.Gateway), ExternalIP: nullable(st.ExternalIP),
		Mappings: make([]portMappingPortJSON, len(st.Mappings)), LastError: nullable(st.LastError), LastErrorTS: millis(st.LastErrorAt)}
	for i, m := range st.Mappings {
		out.Mappings[i] = portMappingPortJSON{Name: m.Name, Protocol: m.Protocol, InternalPort: m.InternalPort,
			ExpiresTS: millis(m.Expires), RenewedTS: millis(m.Renewed), Error: nullable(m.Error)}
		if m.Mapped() {
			ext := m.ExternalPort
			out.Mappings[i].ExternalPort = &ext
		}
	}
	return out
}

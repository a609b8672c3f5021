package admin

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/palpo-im/palpo-desktop/server/portmap"
)

// The federation status carries port mapping only when it is on; a port
// not mapped has a null external port and says why.
func TestPortMappingJSON(t *testing.T) {
	b, err := json.Marshal(federationJSON{PortMapping: portMappingStatus(nil)})
	if err != nil {
		t.Fatal(err)
	}
	var off map[string]any
	json.Unmarshal(b, &off)
	if _, ok := off["port_mapping"]; ok {
		t.Fatalf("port_mapping present while off: %s", b)
	}

	exp := time.UnixMilli(1_700_000_000_000)
	st := &portmap.Status{Enabled: true, Method: portmap.MethodNATPMP, Gateway: "192.168.1.1", ExternalIP: "203.0.113.7",
		Mappings: []portmap.Mapping{
			{Name: "federation", Protocol: "tcp", InternalPort: 8448, ExternalPort: 8448, Expires: exp, Renewed: exp.Add(-time.Hour)},
			{Name: "http-challenge", Protocol: "tcp", InternalPort: 80, Error: "refused"},
		},
		LastError: "map port 80: refused", LastErrorAt: exp}
	b, err = json.Marshal(federationJSON{PortMapping: portMappingStatus(st)})
	if err != nil {
		t.Fatal(err)
	}
	var on struct {
		PortMapping struct {
			Method, Gateway, ExternalIP, LastError *string
			LastErrorTS                            *int64 `json:"last_error_ts"`
			Mappings                               []struct {
				Name         string
				InternalPort int    `json:"internal_port"`
				ExternalPort *int   `json:"external_port"`
				ExpiresTS    *int64 `json:"expires_ts"`
				Error        *string
			}
		} `json:"port_mapping"`
	}
	if err := json.Unmarshal(b, &on); err != nil {
		t.Fatal(err)
	}
	pm := on.PortMapping
	if pm.Method == nil || *pm.Method != "nat-pmp" || pm.LastErrorTS == nil || *pm.LastErrorTS != exp.UnixMilli() || len(pm.Mappings) != 2 {
		t.Fatalf("port_mapping: %s", b)
	}
	if m := pm.Mappings[0]; m.ExternalPort == nil || *m.ExternalPort != 8448 || m.ExpiresTS == nil || *m.ExpiresTS != exp.UnixMilli() || m.Error != nil {
		t.Fatalf("mapped port: %s", b)
	}
	if m := pm.Mappings[1]; m.ExternalPort != nil || m.ExpiresTS != nil || m.Error == nil || *m.Error != "refused" {
		t.Fatalf("failed port: %s", b)
	}
}

package portmap

import (
	"encoding/binary"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// fakeNATPMP is a NAT-PMP gateway (RFC 6886) on loopback. The client
// library always sends to port 5351, so each fake takes a random address
// of 127.0.0.0/8 (all loopback on Linux) to have that port to itself.
type fakeNATPMP struct {
	ip   net.IP
	conn *net.UDPConn

	mu sync.Mutex
	// lifetime is what the gateway grants (it caps what is asked for).
	lifetime uint32
	// result, when not 0, is the result code every mapping request gets.
	result   uint16
	mappings map[uint16]fakeMapping // by internal port
	requests map[uint16]int         // mapping requests by internal port
	deleted  map[uint16]bool
}

type fakeMapping struct {
	external uint16
	lifetime uint32
}

func newFakeNATPMP(t *testing.T) *fakeNATPMP {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skip("the fake NAT-PMP gateway needs the whole 127.0.0.0/8 on loopback, as on Linux")
	}
	var conn *net.UDPConn
	var ip net.IP
	for range 20 {
		ip = net.IPv4(127, byte(1+rand.IntN(250)), byte(rand.IntN(256)), byte(1+rand.IntN(250)))
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: ip, Port: 5351})
		if err == nil {
			conn = c
			break
		}
		if !errors.Is(err, syscall.EADDRINUSE) {
			t.Skipf("cannot bind a loopback address for the fake NAT-PMP gateway: %v", err)
		}
	}
	if conn == nil {
		t.Fatal("no free loopback address for the fake NAT-PMP gateway")
	}
	f := &fakeNATPMP{ip: ip, conn: conn, lifetime: 3600, mappings: map[uint16]fakeMapping{}, requests: map[uint16]int{}, deleted: map[uint16]bool{}}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 64)
		for {
			n, from, err := conn.ReadFromUDP(buf)
			if err != nil {
				return
			}
			if resp := f.answer(buf[:n]); resp != nil {
				conn.WriteToUDP(resp, from)
			}
		}
	}()
	t.Cleanup(func() { conn.Close(); <-done })
	return f
}

func (f *fakeNATPMP) answer(req []byte) []byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(req) < 2 || req[0] != 0 {
		return nil
	}
	switch op := req[1]; {
	case op == 0 && len(req) == 2:
		resp := make([]byte, 12)
		resp[1] = 128
		binary.BigEndian.PutUint32(resp[4:], 1000)
		copy(resp[8:], net.IPv4(203, 0, 113, 7).To4())
		return resp
	case (op == 1 || op == 2) && len(req) == 12:
		internal := binary.BigEndian.Uint16(req[4:])
		external := binary.BigEndian.Uint16(req[6:])
		lifetime := binary.BigEndian.Uint32(req[8:])
		resp := make([]byte, 16)
		resp[1] = 128 + op
		binary.BigEndian.PutUint32(resp[4:], 1000)
		binary.BigEndian.PutUint16(resp[8:], internal)
		if f.result != 0 {
			binary.BigEndian.PutUint16(resp[2:], f.result)
			return resp
		}
		if lifetime == 0 {
			delete(f.mappings, internal)
			f.deleted[internal] = true
			return resp
		}
		f.requests[internal]++
		// A port below 1024 is "taken" on this router: it grants another,
		// as real ones do when the wished-for port is in use.
		if external < 1024 {
			external += 10000
		}
		lifetime = min(lifetime, f.lifetime)
		f.mappings[internal] = fakeMapping{external: external, lifetime: lifetime}
		binary.BigEndian.PutUint16(resp[10:], external)
		binary.BigEndian.PutUint32(resp[12:], lifetime)
		return resp
	}
	return nil
}

func (f *fakeNATPMP) state(internal uint16) (m fakeMapping, ok bool, requests int, deleted bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	m, ok = f.mappings[internal]
	return m, ok, f.requests[internal], f.deleted[internal]
}

func (f *fakeNATPMP) set(lifetime uint32, result uint16) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lifetime, f.result = lifetime, result
}

// fakeIGD is a UPnP internet gateway device: the device description and
// the WANIPConnection:1 actions Palpo uses, over plain HTTP on loopback.
// Tests hand its description URL over directly instead of SSDP.
type fakeIGD struct {
	srv *httptest.Server

	mu sync.Mutex
	// fault, when not 0, is the UPnP error every AddPortMapping gets.
	fault int
	// permanentOnly refuses leases other than 0 with error 725.
	permanentOnly bool
	mappings      map[string]igdMapping // by external port
	adds          map[string]int
	deleted       map[string]bool
}

type igdMapping struct {
	InternalPort, InternalClient, Description, Lease string
}

const igdDescription = `<?xml version="1.0"?>
<root xmlns="urn:schemas-upnp-org:device-1-0">
  <specVersion><major>1</major><minor>0</minor></specVersion>
  <device>
    <deviceType>urn:schemas-upnp-org:device:InternetGatewayDevice:1</deviceType>
    <friendlyName>Fake router</friendlyName>
    <UDN>uuid:fake-igd</UDN>
    <deviceList><device>
      <deviceType>urn:schemas-upnp-org:device:WANDevice:1</deviceType>
      <UDN>uuid:fake-wan</UDN>
      <deviceList><device>
        <deviceType>urn:schemas-upnp-org:device:WANConnectionDevice:1</deviceType>
        <UDN>uuid:fake-wanconn</UDN>
        <serviceList><service>
          <serviceType>urn:schemas-upnp-org:service:WANIPConnection:1</serviceType>
          <serviceId>urn:upnp-org:serviceId:WANIPConn1</serviceId>
          <controlURL>/ctl/IPConn</controlURL>
          <eventSubURL>/evt/IPConn</eventSubURL>
          <SCPDURL>/WANIPCn.xml</SCPDURL>
        </service></serviceList>
      </device></deviceList>
    </device></deviceList>
  </device>
</root>`

func newFakeIGD(t *testing.T) *fakeIGD {
	t.Helper()
	f := &fakeIGD{mappings: map[string]igdMapping{}, adds: map[string]int{}, deleted: map[string]bool{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /rootDesc.xml", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/xml")
		io.WriteString(w, igdDescription)
	})
	mux.HandleFunc("POST /ctl/IPConn", f.control)
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeIGD) location(t *testing.T) *url.URL {
	u, err := url.Parse(f.srv.URL + "/rootDesc.xml")
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// soapArgs reads the action element's children as name → text.
type soapArgs struct {
	Body struct {
		Action struct {
			XMLName xml.Name
			Args    []struct {
				XMLName xml.Name
				Value   string `xml:",chardata"`
			} `xml:",any"`
		} `xml:",any"`
	} `xml:"Body"`
}

func (f *fakeIGD) control(w http.ResponseWriter, r *http.Request) {
	const svc = "urn:schemas-upnp-org:service:WANIPConnection:1"
	action := strings.Trim(r.Header.Get("SOAPAction"), `"`)
	name, ok := strings.CutPrefix(action, svc+"#")
	if !ok {
		http.Error(w, "unknown SOAPAction "+action, http.StatusBadRequest)
		return
	}
	var env soapArgs
	if err := xml.NewDecoder(r.Body).Decode(&env); err != nil || env.Body.Action.XMLName.Local != name {
		http.Error(w, fmt.Sprintf("bad SOAP body: %v", err), http.StatusBadRequest)
		return
	}
	args := map[string]string{}
	for _, a := range env.Body.Action.Args {
		args[a.XMLName.Local] = a.Value
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	var out string
	switch name {
	case "GetExternalIPAddress":
		out = "<NewExternalIPAddress>198.51.100.9</NewExternalIPAddress>"
	case "AddPortMapping":
		if args["NewProtocol"] != "TCP" || args["NewInternalClient"] == "" || args["NewEnabled"] != "1" {
			soapFault(w, 402, "Invalid Args")
			return
		}
		if f.fault != 0 {
			soapFault(w, f.fault, "ConflictInMappingEntry")
			return
		}
		if f.permanentOnly && args["NewLeaseDuration"] != "0" {
			soapFault(w, 725, "OnlyPermanentLeasesSupported")
			return
		}
		f.adds[args["NewExternalPort"]]++
		f.mappings[args["NewExternalPort"]] = igdMapping{InternalPort: args["NewInternalPort"], InternalClient: args["NewInternalClient"],
			Description: args["NewPortMappingDescription"], Lease: args["NewLeaseDuration"]}
	case "DeletePortMapping":
		if _, ok := f.mappings[args["NewExternalPort"]]; !ok {
			soapFault(w, 714, "NoSuchEntryInArray")
			return
		}
		delete(f.mappings, args["NewExternalPort"])
		f.deleted[args["NewExternalPort"]] = true
	default:
		soapFault(w, 401, "Invalid Action")
		return
	}
	w.Header().Set("Content-Type", `text/xml; charset="utf-8"`)
	fmt.Fprintf(w, `<?xml version="1.0"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" s:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/">`+
		`<s:Body><u:%sResponse xmlns:u="%s">%s</u:%sResponse></s:Body></s:Envelope>`, name, svc, out, name)
}

func soapFault(w http.ResponseWriter, code int, desc string) {
	w.Header().Set("Content-Type", `text/xml; charset="utf-8"`)
	w.WriteHeader(http.StatusInternalServerError)
	fmt.Fprintf(w, `<?xml version="1.0"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" s:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/">`+
		`<s:Body><s:Fault><faultcode>s:Client</faultcode><faultstring>UPnPError</faultstring><detail>`+
		`<UPnPError xmlns="urn:schemas-upnp-org:control-1-0"><errorCode>%d</errorCode><errorDescription>%s</errorDescription></UPnPError>`+
		`</detail></s:Fault></s:Body></s:Envelope>`, code, desc)
}

func (f *fakeIGD) state(external int) (m igdMapping, ok bool, adds int, deleted bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	k := strconv.Itoa(external)
	m, ok = f.mappings[k]
	return m, ok, f.adds[k], f.deleted[k]
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Package p2p carries Matrix federation over libp2p, so a family can
// federate without a domain name or an open port: a libp2p host whose
// identity is the server's ed25519 signing key (peer ID = signing key =
// server name, see package servername), the federation router served as
// HTTP/1.1 over libp2p streams (the protocol of go-libp2p's p2p/http), an
// http.RoundTripper for the federation client's per-destination transport
// seam, and discovery and reachability: mDNS on the home network, the
// Kademlia DHT through configured bootstrap peers, circuit relay v2 with
// auto-relay through configured relays, hole punching (DCUtR) and AutoNAT
// v2.
//
// Nothing here opens a socket or contacts anyone until Node.Start, which
// the server calls only with p2p.enabled.
package p2p

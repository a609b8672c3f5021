// Package p2p will carry Matrix federation over libp2p (hosts, mDNS and DHT
// discovery, relays, HTTP over streams) so a family can federate without a
// domain name. It is empty today: peer-to-peer federation is on the road map
// after internet federation, and nothing here pretends otherwise.
package p2p

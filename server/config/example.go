package config

// Example is the fully commented config that `palpo config example` prints
// and that a new data directory starts with. Every value in it is the
// default; a test keeps the two in step.
const Example = `# Palpo configuration (palpo.toml).
#
# This file lives in Palpo's data directory. Every value below is the default;
# delete a line to go back to it. Palpo reads this file at start-up and refuses
# to start, naming the key, when a value is wrong.

# The name of this server: the part after the colon in every user ID
# (@alice:localhost) and room alias. "localhost" is right for a server used
# only on this computer. For a server other devices or other Matrix servers
# reach, use its host name, such as "example.org".
# It can NEVER change once accounts or rooms exist: they are named after it.
server_name = "localhost"

# The address clients should use to reach this server, shown in the desktop
# app and in /.well-known/matrix/client. Empty means "http://" followed by the
# first listen address, which is right for a server on this computer.
# Example: public_baseurl = "https://matrix.example.org"
public_baseurl = ""

# Addresses to listen on, as host:port. 127.0.0.1 accepts connections from
# this computer only; add your LAN address (or "0.0.0.0:8008") to let phones
# and laptops on your home network connect.
listen = ["127.0.0.1:8008"]

# The room version of new rooms when the app creating them asks for none:
# one of "1" to "12". "12" is the spec's recommendation, and apps that know
# better ask for a version themselves. Some older apps do not understand
# version 12 rooms, whose create event names no "creator" and whose room IDs
# have no ":server" part: Nheko 0.11.3 (Debian 12) says "Room creation failed"
# although the room was made, and weechat-matrix warns about every room. If
# people on this server use those apps, "11" or "10" works for them, and
# for everyone else too.
default_room_version = "12"

[registration]
# Who may create an account:
#   "token"  - only people with an invite code (made in the desktop app's
#              Users tab or with "palpo invite create"); the default
#   "open"   - anyone who can reach this server
#   "closed" - nobody; the owner creates accounts ("palpo user add")
mode = "token"

# The shortest password accepted for new accounts and password changes.
min_password_length = 8

# Regular expressions for user names that only an admin may create, such as
# ["^admin$", "^bot_.*"]. Others trying them get M_EXCLUSIVE.
reserved_usernames = []

# A secret for Synapse-compatible shared-secret registration
# (/_synapse/admin/v1/register, used by scripts and register_new_matrix_user).
# Empty disables it. Anyone who knows it can create admin accounts.
shared_secret = ""

[auth]
# Clients that ask for refresh tokens get access tokens that expire after
# this many seconds and refresh them. Other clients' tokens last until logout.
access_token_lifetime_seconds = 3600

# How long a single-use login token (m.login.token, for signing in a phone
# from the desktop app) stays valid, in seconds.
login_token_lifetime_seconds = 120

# The built-in OAuth 2.0 sign-in (Matrix spec v1.15's "OAuth 2.0 API"):
# Element X signs in and creates accounts (with an invite code) through web
# pages Palpo serves. Password login keeps working for other clients.
[oauth]
enabled = true

# Rate limits against password guessing: "burst" attempts at once, then
# "per_second" more each second (0.2 = one every five seconds). Every
# request of a registration counts (Element makes about three per account),
# so register_per_address allows a family behind one router a few accounts
# in a row.
[rate_limits]
login_per_address = { per_second = 0.2, burst = 10 }
login_failures_per_account = { per_second = 0.05, burst = 5 }
register_per_address = { per_second = 0.2, burst = 15 }

[http]
# The largest request body accepted, in bytes, for everything except media
# uploads (those have their own limit). Matrix events are at most 65536 bytes.
max_request_bytes = 1048576

# On shutdown, how many seconds requests already in progress get to finish.
shutdown_timeout_seconds = 10

# Slow or stalled connections are closed, so they cannot pile up: seconds a
# client has to send a request's headers, to send its body (for media
# uploads, the longest pause between two pieces of it, so a large file on a
# slow link still arrives), and seconds an idle kept-alive connection stays
# open. Long-polling requests such as /sync are not limited by these.
header_timeout_seconds = 30
body_timeout_seconds = 60
idle_timeout_seconds = 120

[database]
# The SQLite database file. A relative path is inside the data directory.
path = "palpo.db"

# How many read-only connections to keep; one connection always writes.
readers = 4

[log]
# How much to log: "debug", "info", "warn" or "error".
level = "info"

# "text" for people, "json" for log collectors.
format = "text"

[user_directory]
# Whether searching for people (Element's "Start chat") finds every account
# on this server. When false, people find only those they share a room with
# and the members of public rooms.
search_all_users = false

[media]
# The largest file anyone may upload, in bytes (100 MiB). Clients are told
# this limit and refuse bigger files themselves.
max_upload_bytes = 104857600

# A limit on the bytes each user's uploads may take in all; 0 means no limit.
max_bytes_per_user = 0

# Clients may reserve a media ID before uploading (to show a message while
# the file is still on its way). How many such IDs one user may hold at
# once, and how many seconds one waits for its file before it is forgotten.
max_pending_uploads = 10
pending_expiry_seconds = 86400

# Old clients download media without signing in. Matrix has frozen that:
# such downloads only work for media uploaded before this moment (such as
# "2024-09-01T00:00:00Z"). Empty means never: every download needs sign-in.
# Clients that only know the old API (weechat-matrix, matrix-nio before
# 0.25) can still send files either way; to let them show files sent from
# now on too, set a moment far in the future, at the price that anyone
# holding a file's link can then download it without an account.
unauthenticated_before = ""

# Thumbnails are only made for images up to this many pixels, and this wide
# and tall. Bigger images can still be downloaded; they just get no
# thumbnail. This protects the server from "decompression bombs".
max_image_pixels = 32000000
max_image_width = 16384
max_image_height = 16384

# With federation on, files sent from other servers are fetched once and
# kept here, so they open fast and while their server is away. This caps
# the bytes those copies take; past it the least recently opened ones are
# removed (and fetched again if someone opens them). 0 means no cap. Files
# bigger than max_upload_bytes are never fetched from other servers.
remote_cache_max_bytes = 1073741824

[media.url_preview]
# Link previews: the server fetches a web page someone linked to, to show
# its title and picture. Off by default, because the linked site then sees
# this server's address each time someone reads the link.
enabled = false

# Previews never reach private, loopback or link-local addresses (your
# router, other computers at home), unless the network is listed here, as
# CIDR such as "192.168.1.0/24".
allow_networks = []

# The most bytes read of one page or image, and the seconds one preview may take.
max_bytes = 10485760
timeout_seconds = 10

[backup]
# The folder backups go to ("Back up now", "palpo backup create" and the
# schedule) and are listed from. Empty means the "backups" folder inside the
# data directory; a relative path is inside the data directory too. A backup
# on the same disk does not survive that disk: choose a USB stick or another
# disk, or copy backups there.
dir = ""

# Back up by itself while Palpo runs: "off", "daily" or "weekly", counted
# from the newest backup in the folder (a computer that was off catches up
# a few minutes after Palpo starts).
schedule = "off"

# How many of this server's backups to keep in the folder when the schedule
# makes a new one; older ones are deleted.
keep = 7

# A file whose first line is a passphrase: backups are then encrypted with
# it (age, scrypt), as they should be on a USB stick or in a cloud folder.
# Without the passphrase such a backup cannot be restored: keep it safe,
# apart from the backups. A relative path is inside the data directory.
# Empty means backups are not encrypted.
passphrase_file = ""

[support]
# Who people should contact about this server, published at
# /.well-known/matrix/support (clients show it, for instance to someone whose
# account was locked). With no contacts and no page, that address answers
# "not found". Add one [[support.contacts]] section per contact, with a
# matrix_id, an email_address or both, and a role: "m.role.admin" for any
# question or "m.role.security" for sensitive reports. For example:
#   [[support.contacts]]
#   matrix_id = "@admin:example.org"
#   email_address = "admin@example.org"
#   role = "m.role.admin"
contacts = []

# A web page with help for the people on this server; empty for none.
# Example: support_page = "https://example.org/help.html"
support_page = ""

[server_notices]
# Admins can send a user an official message (the admin API's
# send_server_notice). It arrives from this user, in a room of its own that
# the user is invited to. Nobody can register this user name.
system_user_localpart = "server"
system_user_display_name = "Server Notices"
room_name = "Server Notices"

[federation]
# Federation lets people here share rooms with people on other Matrix
# servers (matrix.org, other Palpos...). Off by default: a server with it off
# makes no connection to any other server. Turning it on needs a server_name
# other servers can reach (a public host name) and a TLS certificate.
enabled = false

# Where the federation API listens (TLS). Other servers connect to port 8448
# unless /.well-known/matrix/server or a DNS SRV record says otherwise.
listen = "0.0.0.0:8448"

# The listener's certificate (full chain) and private key, as PEM files, such
# as Let's Encrypt's fullchain.pem and privkey.pem. Both are needed when
# enabled is true and domain (below) is empty. Relative paths are inside the
# data directory. When set, they win over domain.
tls_cert_file = ""
tls_key_file = ""

# Automatic TLS: this server's public DNS name (usually server_name). When
# set and the two files above are not, Palpo gets the certificate from an
# ACME certificate authority (Let's Encrypt by default), keeps it with the
# ACME account key in <data dir>/certificates (so backups carry them) and
# renews it by itself. A start with the CA unreachable does not wait for it:
# an existing certificate keeps being served and Palpo retries in the
# background.
domain = ""

# Extra certificate authorities (PEM files) to trust when connecting to
# other servers, beside the system's: for a private CA on a LAN.
trusted_ca_files = []

# Check other servers' certificates. Only turn this off for experiments: it
# lets anyone between the servers impersonate any of them.
verify_certificates = true

# Which servers to talk to. When allow_servers is not empty, only the
# servers it lists; never the servers deny_servers lists. Entries are server
# names and may use the globs * and ?, such as "*.example.org".
allow_servers = []
deny_servers = []

# Servers asked for another server's signing keys when that server does not
# answer itself. Empty by default, and Palpo asks each server directly: a
# notary (such as matrix.org, which many servers use) learns which servers
# you talk to. That is a privacy choice; add "matrix.org" here only if you
# accept it.
key_notaries = []

# Let federation connect to private, loopback and link-local addresses
# (192.168.x.x, 10.x.x.x, 127.0.0.1...). Off, a server name that resolves
# there is refused, so nobody can make this server probe your home network.
# Turn it on to federate between servers on one LAN.
allow_private_addresses = false

# Delegation: when other servers should reach this server_name at another
# host or port (for example "matrix.example.org:443"), set it here and it is
# served at this server's /.well-known/matrix/server on the client listener.
# Empty: nothing is served there.
#
# This is how federation runs over port 443 when port 8448 cannot be opened
# (a router or provider that blocks it, a web server already on 443): other
# servers first ask https://<server_name>/.well-known/matrix/server and then
# connect where it points. Make https://<server_name> (port 443) reach this
# server's client listener, and the address set here reach the federation
# listener (its certificate must be valid for that host name). Set
# public_baseurl at the top too: /.well-known/matrix/client then tells
# clients (phones, Element) the same https:// address, so people sign in
# with just their user ID. "palpo federation check" shows which route other
# servers take and what still blocks them.
well_known_server = ""

[federation.acme]
# The certificate authority: "letsencrypt", "letsencrypt-staging" (for
# trying things out; its certificates are not trusted by other servers), or
# the https URL of another ACME directory.
ca = "letsencrypt"

# The PEM file of the root the ACME server's own HTTPS certificate chains to,
# for a private CA. Empty: the system's roots.
ca_root_file = ""

# Where the CA sends expiry notices. Optional.
email = ""

# How the CA checks that this server owns domain: "http-01" asks for a file
# on port 80 (http_challenge_listen below; the CA always connects to port
# 80), "tls-alpn-01" makes a TLS connection to port 443, which works only
# when port 443 reaches this server: the https listener ([https] below), or
# the federation listener (listen = "0.0.0.0:443", or forwarded by a router).
challenges = ["http-01", "tls-alpn-01"]

# Where the http-01 challenge is answered. Every other request there is
# redirected to https on domain. Port 80 usually needs a router forwarding
# it here, and on Linux root or CAP_NET_BIND_SERVICE.
http_challenge_listen = "0.0.0.0:80"

[federation.port_mapping]
# Ask the home router to forward the federation port (and port 80 for the
# http-01 challenge, when automatic TLS uses it) to this computer, by NAT-PMP
# or UPnP IGD, renew the forwarding while Palpo runs and remove it when Palpo
# stops. Off by default: it changes the router's settings, which should be
# your decision, and a router that allows it lets any program on your network
# open ports the same way. Works only with federation enabled; the admin
# federation status shows the mapped ports, the router's external address and
# any error. Without it, forward the ports in the router's settings by hand.
enabled = false

# Extra TCP ports to forward, such as 443 when it serves this server too.
ports = []

[https]
# Serve the client API (what Element and phones use; the same as "listen"
# above) over HTTPS too, with the federation certificate: the automatic one
# for federation.domain, or federation.tls_cert_file and tls_key_file. Then
# phones connect to https://example.org; set public_baseurl =
# "https://example.org" at the top as well. /.well-known/matrix/client and
# /.well-known/matrix/server are answered there too (the delegation target
# set in well_known_server above). Only the client API is served here:
# other servers still connect to the federation listener. Needs
# federation.domain or the certificate files; federation itself may stay
# off.
enabled = false

# Where it listens. Clients, and certificate authorities checking the
# domain with tls-alpn-01, connect to port 443: forward it here from your
# router. On Linux, ports below 1024 need root or CAP_NET_BIND_SERVICE.
listen = "0.0.0.0:443"

[p2p]
# Peer-to-peer federation over libp2p: share rooms with other Palpos without
# a domain name or an open port, through home routers (NATs). Off by
# default: with it off, nothing here opens a socket or contacts anyone.
#
# A peer-to-peer server's name is made from its signing key, such as
# "duafvfkasysx6g3mesqxlgct7bhkun6bhff5bjyjebmlut7uhcva.p2p.alt", so
# server_name above must be that name (a server asked to start with
# enabled = true and another name says which one; it is fixed at the first
# start like any server name). A server with a domain (and federation
# enabled) may turn this on too: it then also reaches peer-to-peer servers.
enabled = false

# libp2p addresses to listen on (TCP and QUIC, IPv4 and IPv6). A fixed port
# keeps the addresses given to friends valid across restarts.
listen = ["/ip4/0.0.0.0/tcp/8449", "/ip4/0.0.0.0/udp/8449/quic-v1", "/ip6/::/tcp/8449", "/ip6/::/udp/8449/quic-v1"]

# Find other Palpos on the home network by multicast DNS.
mdns = true

# Find peers anywhere through the Kademlia DHT, joined through
# bootstrap_peers below. With no bootstrap peers no DHT node is contacted.
dht = true

# DHT nodes to join through, as multiaddrs with /p2p/<peer ID>, such as
# "/ip4/203.0.113.7/udp/4001/quic-v1/p2p/12D3KooW...". Empty by default.
bootstrap_peers = []

# Circuit relays (v2) that keep this server reachable behind a NAT that
# hole punching cannot pass, as multiaddrs with /p2p/<peer ID>. Relayed
# traffic is end-to-end encrypted between the two servers; the relay sees
# only who talks to whom and how much.
relays = []

# Other servers to connect to at start, as multiaddrs with /p2p/<peer ID>.
static_peers = []

# Relay for other servers (circuit relay v2, with libp2p's limits): for a
# server with a public address that helps its friends behind NATs.
relay_service = false

# Ask the home router (UPnP or NAT-PMP) to forward the listen ports.
port_mapping = true
`

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

[http]
# The largest request body accepted, in bytes, for everything except media
# uploads (those have their own limit). Matrix events are at most 65536 bytes.
max_request_bytes = 1048576

# On shutdown, how many seconds requests already in progress get to finish.
shutdown_timeout_seconds = 10

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
`

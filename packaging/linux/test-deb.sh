#!/usr/bin/env bash
# Installs the .deb on this machine, runs the installed /usr/bin/palpo serve
# against a temporary data directory, asks it for /_matrix/client/versions,
# then purges the package and checks nothing is left. Cleans up on failure too.
# Needs root (or sudo) and refuses to touch a machine that already has Palpo.
#
#   packaging/linux/test-deb.sh DEB
set -euo pipefail
deb=${1:?usage: test-deb.sh DEB}
sudo=""; [ "$(id -u)" -ne 0 ] && sudo=sudo

fail() { echo "package-test: FAIL: $*" >&2; exit 1; }

# Purging deletes the palpo user and /var/lib/palpo: never do that to an
# existing installation or to data we did not create.
if dpkg-query -W -f '${Status}' palpo 2>/dev/null | grep -q 'installed\|config-files'; then
	fail "a palpo package is already on this machine; not touching it"
fi
[ ! -e /usr/bin/palpo ] || fail "/usr/bin/palpo exists; not touching it"
[ ! -e /var/lib/palpo ] || fail "/var/lib/palpo exists; not touching it"
! getent passwd palpo >/dev/null || fail "a user named palpo exists; not touching it"

work=$(mktemp -d)
pid=""
installed=""
cleanup() {
	status=$?
	if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
		kill "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	fi
	if [ -n "$installed" ]; then
		$sudo dpkg --purge palpo >/dev/null 2>&1 || echo "package-test: could not purge palpo" >&2
	fi
	rm -rf "$work"
	exit $status
}
trap cleanup EXIT INT TERM

echo "package-test: dpkg -i $deb"
installed=1
$sudo dpkg -i "$deb" >"$work/dpkg.log" 2>&1 || { cat "$work/dpkg.log" >&2; fail "dpkg -i"; }

files=$(dpkg -L palpo)
for f in /usr/bin/palpo /usr/share/applications/palpo.desktop \
	/usr/share/icons/hicolor/48x48/apps/im.palpo.desktop.png \
	/usr/share/icons/hicolor/512x512/apps/im.palpo.desktop.png \
	/usr/share/man/man1/palpo.1.gz /lib/systemd/system/palpo.service; do
	[ -f "$f" ] || fail "$f not installed"
done
getent passwd palpo >/dev/null || fail "postinst did not create the palpo user"
[ "$(stat -c %U /var/lib/palpo)" = palpo ] || fail "/var/lib/palpo is not owned by palpo"
/usr/bin/palpo version >/dev/null 2>&1 || fail "palpo version"

# Port 0: the kernel picks a free loopback port; the log says which.
data=$work/data
mkdir "$data"
printf 'listen = ["127.0.0.1:0"]\n' >"$data/palpo.toml"
/usr/bin/palpo serve --data-dir "$data" >"$work/serve.log" 2>&1 &
pid=$!
url=""
for _ in $(seq 1 100); do
	url=$(sed -n 's/.*msg="Palpo is ready.* url=\(http:[^ ]*\).*/\1/p' "$work/serve.log" | head -1)
	[ -n "$url" ] && break
	kill -0 "$pid" 2>/dev/null || { cat "$work/serve.log" >&2; fail "palpo serve exited"; }
	sleep 0.1
done
[ -n "$url" ] || { cat "$work/serve.log" >&2; fail "palpo serve did not say it was ready within 10s"; }
body=$(curl -fsS --max-time 10 "$url/_matrix/client/versions") || fail "GET $url/_matrix/client/versions"
echo "$body" | grep -q '"versions"' || fail "unexpected /versions answer: $body"
echo "package-test: $url/_matrix/client/versions answered $(echo "$body" | head -c 80)..."
kill "$pid"
wait "$pid" || fail "palpo serve did not stop cleanly on SIGTERM"
pid=""
grep -q "Palpo stopped cleanly" "$work/serve.log" || fail "no clean stop in the log"

echo "package-test: dpkg -r palpo"
$sudo dpkg -r palpo >"$work/dpkg.log" 2>&1 || { cat "$work/dpkg.log" >&2; fail "dpkg -r"; }
for f in $files; do
	# Folders shared with other packages stay; every file of ours must go.
	if [ ! -d "$f" ] && { [ -f "$f" ] || [ -L "$f" ]; }; then fail "$f is still there after dpkg -r"; fi
done
# remove keeps the service's data and user (see postrm); purge removes them.
[ -d /var/lib/palpo ] || fail "dpkg -r removed /var/lib/palpo (only purge should)"
$sudo dpkg --purge palpo >"$work/dpkg.log" 2>&1 || { cat "$work/dpkg.log" >&2; fail "dpkg --purge"; }
installed=""
[ ! -e /var/lib/palpo ] || fail "/var/lib/palpo is still there after purge"
! getent passwd palpo >/dev/null || fail "the palpo user is still there after purge"
! getent group palpo >/dev/null || fail "the palpo group is still there after purge"
echo "package-test: OK"

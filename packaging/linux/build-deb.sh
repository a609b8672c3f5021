#!/usr/bin/env bash
# Builds dist/palpo_<version>_<arch>.deb from a prebuilt binary with dpkg-deb
# (no debhelper, no fakeroot: --root-owner-group makes every file root's).
#
#   packaging/linux/build-deb.sh BINARY VERSION OUTDIR
set -euo pipefail
bin=${1:?usage: build-deb.sh BINARY VERSION OUTDIR}
version=${2:?version}
out=${3:?output folder}
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)

# Debian orders 0.1.0~dev before 0.1.0, so a development build upgrades to
# the release.
debversion=${version//-/\~}
arch=$(dpkg --print-architecture)

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
root=$stage/root
install -d "$root/DEBIAN"
install -D -m 0755 "$bin" "$root/usr/bin/palpo"
install -D -m 0644 "$here/palpo.desktop" "$root/usr/share/applications/palpo.desktop"
for png in "$repo"/assets/icons/palpo-*.png; do
	n=$(basename "$png" .png); n=${n#palpo-}
	install -D -m 0644 "$png" "$root/usr/share/icons/hicolor/${n}x${n}/apps/im.palpo.desktop.png"
done
install -d "$root/usr/share/man/man1"
gzip -9n <"$here/palpo.1" >"$root/usr/share/man/man1/palpo.1.gz"
chmod 0644 "$root/usr/share/man/man1/palpo.1.gz"
install -D -m 0644 "$here/palpo.service" "$root/lib/systemd/system/palpo.service"
install -D -m 0644 "$repo/LICENSE" "$root/usr/share/doc/palpo/copyright"
for s in postinst prerm postrm; do
	install -m 0755 "$here/$s" "$root/DEBIAN/$s"
done

size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
cat >"$root/DEBIAN/control" <<CONTROL
Package: palpo
Version: $debversion
Architecture: $arch
Maintainer: Palpo developers <dev@palpo.im>
Installed-Size: $size
Depends: libc6 (>= 2.34), libgl1, libx11-6, libxcursor1, libxrandr2, libxinerama1, libxi6, libxxf86vm1, xdg-utils, adduser
Recommends: libgl1-mesa-dri
Section: net
Priority: optional
Homepage: https://github.com/palpo-im/palpo-desktop
Description: personal Matrix homeserver with a desktop app
 Palpo runs a Matrix chat server for a family or a small group from a
 desktop app, or headless as a systemd service (palpo.service, installed
 but not enabled; it runs as the palpo user with data in /var/lib/palpo).
 Any Matrix client, such as Element, connects to it.
CONTROL

mkdir -p "$out"
deb=$out/palpo_${debversion}_${arch}.deb
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null
echo "$deb"

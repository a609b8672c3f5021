#!/usr/bin/env bash
# Builds dist/palpo-<version>-linux-<arch>.tar.gz: the binary, the .desktop
# entry, the icons, the man page and an install.sh for people without dpkg.
# (`fyne package` would rebuild the binary with its own flags, bump Build in
# FyneApp.toml and write into the source tree; this does the same job from
# the binary `make build` made.)
#
#   packaging/linux/build-archive.sh BINARY VERSION OUTDIR
set -euo pipefail
bin=${1:?usage: build-archive.sh BINARY VERSION OUTDIR}
version=${2:?version}
out=${3:?output folder}
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
arch=$(go env GOARCH 2>/dev/null || uname -m)

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
name=palpo-$version-linux-$arch
dir=$stage/$name
install -D -m 0755 "$bin" "$dir/bin/palpo"
install -D -m 0644 "$here/palpo.desktop" "$dir/share/applications/palpo.desktop"
for png in "$repo"/assets/icons/palpo-*.png; do
	n=$(basename "$png" .png); n=${n#palpo-}
	install -D -m 0644 "$png" "$dir/share/icons/hicolor/${n}x${n}/apps/im.palpo.desktop.png"
done
install -D -m 0644 "$here/palpo.1" "$dir/share/man/man1/palpo.1"
install -D -m 0644 "$here/palpo.service" "$dir/lib/systemd/system/palpo.service"
install -m 0644 "$repo/LICENSE" "$dir/LICENSE"
cat >"$dir/install.sh" <<'INSTALL'
#!/bin/sh
# Installs Palpo for this user (~/.local) or, run as root, for everyone
# (/usr/local). PREFIX=/some/where ./install.sh picks another place;
# ./install.sh --uninstall removes what it installed (never your data).
set -e
cd "$(dirname "$0")"
if [ -z "$PREFIX" ]; then
	if [ "$(id -u)" -eq 0 ]; then PREFIX=/usr/local; else PREFIX=$HOME/.local; fi
fi
files=$(find bin share -type f)
if [ "$1" = "--uninstall" ]; then
	for f in $files; do rm -f "$PREFIX/$f"; done
	echo "Removed Palpo from $PREFIX (your data was kept)."
	exit 0
fi
for f in $files; do
	mkdir -p "$PREFIX/$(dirname "$f")"
	cp "$f" "$PREFIX/$f"
done
command -v update-desktop-database >/dev/null && update-desktop-database -q "$PREFIX/share/applications" || true
echo "Installed Palpo in $PREFIX (run $PREFIX/bin/palpo)."
INSTALL
chmod 0755 "$dir/install.sh"

mkdir -p "$out"
tarball=$out/$name.tar.gz
tar -C "$stage" --owner=0 --group=0 --numeric-owner --sort=name -czf "$tarball" "$name"
echo "$tarball"

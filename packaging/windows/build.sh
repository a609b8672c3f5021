#!/usr/bin/env bash
# Cross-compiles bin/palpo.exe with mingw-w64 (cgo for Fyne's OpenGL driver),
# with the icon and version information as a Windows resource, then builds
# the NSIS installer dist/palpo-<version>-setup.exe.
#
#   packaging/windows/build.sh VERSION WIN_VERSION(a.b.c.d) OUTDIR
set -euo pipefail
version=${1:?usage: build.sh VERSION WIN_VERSION OUTDIR}
winversion=${2:?four-part version}
out=${3:?output folder}
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
cd "$repo"

# The resource must sit in package main's folder while go build runs; it is a
# build output, removed afterwards even when the build fails.
syso=$repo/rsrc_windows_amd64.syso
tmp=$(mktemp -d)
trap 'rm -rf "$tmp" "$syso"' EXIT
sed -e "s|@VERSION@|$version|g" -e "s|@VERSION_COMMAS@|${winversion//./,}|g" \
	-e "s|@ICON@|$repo/assets/icons/palpo.ico|g" "$here/palpo.rc.in" >"$tmp/palpo.rc"
x86_64-w64-mingw32-windres -O coff -i "$tmp/palpo.rc" -o "$syso"

echo "Cross-compiling bin/palpo.exe (the first build takes about 9 minutes)"
# -H windowsgui: no console window behind the desktop app.
CGO_ENABLED=1 GOOS=windows GOARCH=amd64 CC=x86_64-w64-mingw32-gcc \
	go build -trimpath \
	-ldflags "-s -w -H windowsgui -X github.com/palpo-im/palpo-desktop/app.Version=$version" \
	-o bin/palpo.exe .
rm -f "$syso"

mkdir -p "$out"
out=$(cd "$out" && pwd)
setup=$out/palpo-$version-setup.exe
makensis -V2 -NOCD -DVERSION="$version" -DWIN_VERSION="$winversion" \
	-DREPO="$repo" -DOUTFILE="$setup" "$here/palpo.nsi"
ls -l bin/palpo.exe "$setup"

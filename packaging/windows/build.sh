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

echo "Cross-compiling bin/palpo.exe (the first build takes about 6 minutes on 2 cores)"
# -H windowsgui: no console window behind the desktop app. no_emoji: see
# GUI_TAGS in the Makefile.
CGO_ENABLED=1 GOOS=windows GOARCH=amd64 CC=x86_64-w64-mingw32-gcc \
	go build -trimpath -tags no_emoji \
	-ldflags "-s -w -H windowsgui -X github.com/palpo-im/palpo-desktop/app.Version=$version" \
	-o bin/palpo.exe .
rm -f "$syso"

mkdir -p "$out"
out=$(cd "$out" && pwd)
setup=$out/palpo-$version-setup.exe
makensis -V2 -NOCD -DVERSION="$version" -DWIN_VERSION="$winversion" \
	-DREPO="$repo" -DOUTFILE="$setup" "$here/palpo.nsi"

# Check what was built: both are 64-bit Windows programs, and palpo.exe is a
# GUI program (no console window), as -H windowsgui asks.
pe_field() { # file offset-from-PE-header length: the little-endian value
	local pe
	pe=$(od -An -tu4 -j60 -N4 "$1" | tr -d ' ')
	od -An -tu"$3" -j$((pe + $2)) -N"$3" "$1" | tr -d ' '
}
for exe in bin/palpo.exe "$setup"; do
	[ "$(head -c2 "$exe")" = MZ ] || { echo "$exe is not a Windows program" >&2; exit 1; }
done
[ "$(pe_field bin/palpo.exe 4 2)" = $((0x8664)) ] || { echo "bin/palpo.exe is not built for x86-64" >&2; exit 1; }
[ "$(pe_field bin/palpo.exe 92 2)" = 2 ] || { echo "bin/palpo.exe is not a GUI program" >&2; exit 1; }
ls -l bin/palpo.exe "$setup"

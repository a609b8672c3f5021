# Palpo's build. `make run` and `make test` work on a fresh Debian machine
# with Go (1.21 or newer) installed: Go fetches the exact toolchain below by
# itself, and missing Debian packages are installed with apt-get.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c

export GOTOOLCHAIN := go1.27.3
GO ?= go

# Everything that builds without the GUI's cgo/OpenGL parts. The root package
# (main.go) needs Fyne's OpenGL driver when built with cgo, so it is only
# vetted without cgo and built by `make build`.
PKGS := ./app/... ./assets/... ./cmd/... ./p2p/... ./server/... ./ui/...

# Debian packages for the desktop (Fyne) build, from shared/DESIGN.md.
GUI_DEBS := gcc libc6-dev pkg-config libgl1-mesa-dev libx11-dev libxcursor-dev \
	libxrandr-dev libxinerama-dev libxi-dev libxxf86vm-dev
# The race detector needs a C compiler.
TEST_DEBS := gcc libc6-dev strace

# Build tags of the desktop app. no_emoji leaves out Fyne's 4 MB colour
# emoji font, which Fyne parses once per text style it draws (about 14 MB of
# the window's heap) for glyphs Palpo's own words never use; an emoji in a
# user's display name falls back to the system's fonts.
GUI_TAGS := no_emoji

VERSION ?= 0.1.0-dev
LDFLAGS := -s -w -X github.com/palpo-im/palpo-desktop/app.Version=$(VERSION)

# apt_install installs the Debian packages in $(1) that are missing, and says so.
define apt_install
	@if ! command -v dpkg >/dev/null; then \
		echo "Not a Debian system: make sure these are installed: $(1)"; \
	else \
		missing=""; \
		for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
		if [ -n "$$missing" ]; then \
			sudo=""; [ "$$(id -u)" -ne 0 ] && sudo=sudo; \
			echo "Installing missing Debian packages:$$missing"; \
			$$sudo apt-get update -qq; \
			DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq --no-install-recommends $$missing; \
		fi; \
	fi
endef

.PHONY: all run test lint build build-headless deps test-deps e2e-deps check-go spec-coverage bench bench-startup clean \
	package-linux package-windows package-test icons dendrite-tool test-interop test-nat

all: build

check-go:
	@command -v $(GO) >/dev/null || { echo "Go is not installed. Install Go 1.21 or newer (Debian: apt-get install golang-go from bookworm-backports, or the tarball from go.dev); it fetches Go $(GOTOOLCHAIN:go%=%) by itself."; exit 1; }
	@echo "Using $$($(GO) version) (GOTOOLCHAIN=$(GOTOOLCHAIN))"

## deps: install the Debian packages the desktop (GUI) build needs
deps:
	$(call apt_install,$(GUI_DEBS))

test-deps:
	$(call apt_install,$(TEST_DEBS))

## e2e-deps: Node.js and Element's SDK (from e2e/js/package-lock.json) for the end-to-end test
e2e-deps:
	@command -v node >/dev/null || { echo "Node.js not found: installing it with apt-get"; $(MAKE) --no-print-directory node-deb; }
	@if [ ! -d e2e/js/node_modules/matrix-js-sdk ] || [ e2e/js/package-lock.json -nt e2e/js/node_modules/.package-lock.json ]; then \
		echo "Installing Element's SDK for the end-to-end test (npm ci in e2e/js)"; \
		cd e2e/js && npm ci --no-audit --no-fund; \
	fi

node-deb:
	$(call apt_install,nodejs npm)

## run: run Palpo; the desktop app with a display, the headless server without
run: check-go
	@if [ -n "$${DISPLAY:-}$${WAYLAND_DISPLAY:-}" ]; then \
		echo "Display found: building the desktop app (the first build compiles OpenGL code and takes several minutes)."; \
		$(MAKE) --no-print-directory build; \
		./bin/palpo $(ARGS); \
	else \
		echo "No display found: building and running the headless server (palpo serve)."; \
		$(MAKE) --no-print-directory build-headless; \
		if ./bin/palpo version | grep -q 'desktop app: false'; then ./bin/palpo serve $(ARGS); \
		else ./bin/palpo-headless serve $(ARGS); fi; \
	fi

## build: the desktop app binary bin/palpo (cgo, Fyne)
build: check-go deps
	@echo "Building bin/palpo (desktop app and server)"
	CGO_ENABLED=1 $(GO) build -trimpath -tags '$(GUI_TAGS)' -ldflags '$(LDFLAGS)' -o bin/palpo .

## build-headless: a server-only binary bin/palpo-headless, no cgo needed;
## also bin/palpo when there is no desktop build, the name the README uses
build-headless: check-go
	@echo "Building bin/palpo-headless (server only, no desktop app)"
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/palpo-headless .
	@if [ ! -x bin/palpo ] || ! ./bin/palpo version 2>/dev/null | grep -q 'desktop app: true'; then \
		cp -f bin/palpo-headless bin/palpo; \
		echo "No desktop build here: bin/palpo is the server-only build too (./bin/palpo user add …)"; \
	fi

## lint: gofmt, go vet and staticcheck
lint: check-go
	@echo "Checking gofmt"
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
		if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi
	@echo "Running go vet and staticcheck"
	CGO_ENABLED=0 $(GO) vet ./...
	CGO_ENABLED=0 $(GO) tool staticcheck ./...

## test: lint, then every test that builds without the GUI, with the race detector
test: check-go test-deps e2e-deps lint
	@echo "Running tests (race detector on)"
	PALPO_E2E_JS=1 CGO_ENABLED=1 $(GO) test -tags goolm -race -count=1 -timeout 20m $(PKGS)

## dendrite-tool: bin/dendrite-test, Dendrite 0.13.8 (Apache-2.0) as a federation
## test peer, built from its own module e2e/dendrite (its go.mod pins it; a tool
## directive names Dendrite's cmd/dendrite). Pure Go: Dendrite takes the
## modernc SQLite driver when cgo is off. About a minute cold, instant warm.
dendrite-tool: check-go
	@echo "Building bin/dendrite-test (Dendrite monolith from e2e/dendrite, for interop tests)"
	cd e2e/dendrite && CGO_ENABLED=0 $(GO) build -trimpath -o ../../bin/dendrite-test github.com/matrix-org/dendrite/cmd/dendrite

## test-interop: the interop tests against a Dendrite peer (PALPO_DENDRITE)
test-interop: check-go test-deps dendrite-tool
	@echo "Running interop tests against bin/dendrite-test (race detector on)"
	PALPO_DENDRITE="$(CURDIR)/bin/dendrite-test" CGO_ENABLED=1 $(GO) test -tags goolm -race -count=1 -timeout 15m -run Interop ./server/...

## test-nat: the NAT test (PALPO_NAT): two homes behind NATs in network
## namespaces reach each other through a relay, then directly after hole
## punching; needs root (it creates namespaces, veth pairs and iptables rules)
test-nat: check-go test-deps
	$(call apt_install,iproute2 iptables)
	@echo "Running the NAT test (network namespaces; race detector on)"
	PALPO_NAT=1 CGO_ENABLED=1 $(GO) test -race -count=1 -timeout 10m -v -run 'TestNATRelayThenHolePunch' ./server/

## spec-coverage: regenerate docs/spec-coverage.md (client-server and server-server) from the spec's OpenAPI files
spec-coverage: check-go
	$(GO) run ./cmd/spec-coverage -spec ../shared/matrix-spec/data/api/client-server -federation-spec ../shared/matrix-spec/data/api/server-server -out docs/spec-coverage.md

## bench: Go benchmarks of the hot paths
bench: check-go
	$(GO) test -run '^$$' -bench . -benchmem $(PKGS)

## bench-startup: start-up time to the first /versions and idle memory of palpo serve
bench-startup: build-headless
	$(GO) run ./cmd/startup-bench -binary ./bin/palpo-headless

## icons: regenerate assets/icons (hicolor PNGs, palpo.ico) from assets/icon.png
icons: check-go
	$(GO) run ./cmd/iconsizes -src assets/icon.png -out assets/icons

# Debian's version of VERSION: 0.1.0-dev becomes 0.1.0~dev (sorts before 0.1.0).
DEB_VERSION = $(subst -,~,$(VERSION))
DEB_ARCH = $(shell dpkg --print-architecture 2>/dev/null || echo amd64)
DEB := dist/palpo_$(DEB_VERSION)_$(DEB_ARCH).deb
PKG_DEBS := curl xdg-utils

## package-linux: dist/palpo_<version>_<arch>.deb and dist/palpo-<version>-linux-<arch>.tar.gz
package-linux: build
	$(call apt_install,$(PKG_DEBS))
	packaging/linux/build-deb.sh bin/palpo $(VERSION) dist
	packaging/linux/build-archive.sh bin/palpo $(VERSION) dist
	@ls -l $(DEB) dist/palpo-$(VERSION)-linux-*.tar.gz

## package-test: build the .deb, install it, run the installed palpo serve, remove it
package-test: package-linux
	packaging/linux/test-deb.sh $(DEB)

# The Windows version resource wants four numbers: 0.1.0-dev is 0.1.0.0.
WIN_VERSION = $(shell v='$(VERSION)'; v=$${v%%-*}; IFS=.; set -- $$v 0 0 0; echo "$$1.$$2.$$3.0")
WIN_DEBS := gcc-mingw-w64-x86-64 nsis

## package-windows: bin/palpo.exe (mingw-w64 cross build) and dist/palpo-<version>-setup.exe (NSIS)
package-windows: check-go
	$(call apt_install,$(WIN_DEBS))
	packaging/windows/build.sh $(VERSION) $(WIN_VERSION) dist

clean:
	rm -rf bin dist

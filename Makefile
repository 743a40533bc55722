# Fyr: make run · make test · make bench · make release · make bundle · make image · make complement · make interop · make jsclient
#
# The Go toolchain is pinned; machines with an older Go fetch it through the module proxy.
export GOTOOLCHAIN := go1.27.3
export CGO_ENABLED := 0

GO      ?= go
# goolm selects mautrix's pure-Go Olm for the tests that drive its E2EE client (without it,
# mautrix's crypto package needs libolm and cgo). The server itself does not use Olm.
TAGS    ?= goolm
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
# UPDATE_KEYS: comma-separated base64 ed25519 public keys (fyr update keygen prints one) that
# the binary trusts for system updates; ship two so one can be retired.
UPDATE_KEYS ?=
LDFLAGS := -s -w -X main.version=$(VERSION) $(if $(UPDATE_KEYS),-X fyr/firmware/update.BuiltinKeys=$(UPDATE_KEYS))
DIST    := dist
SHARED  ?= ../shared
# Arguments for `fyr serve` under `make run`, e.g. make run ARGS=--open-registration
ARGS    ?=
# The board of make image and make image-test: qemu-arm64, rpi4 or uefi-arm64.
BOARD   ?= qemu-arm64
# Where $(SHARED)/peers/dendrite.sh builds Dendrite for make interop.
PEERS_BIN ?= /tmp/peers/bin

.PHONY: all build run test bench netbed interop jsclient release bundle image image-test complement clean

all: build

build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(DIST)/fyr ./cmd/fyr

# Build, then start with embedded defaults on loopback; state goes to ./fyr-data.
run: build
	./$(DIST)/fyr serve $(ARGS)

# gofmt check, go vet, every test.
test:
	@out=$$("$$($(GO) env GOROOT)/bin/gofmt" -l $$(find . -name '*.go' -not -path './$(DIST)/*')); \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi
	$(GO) vet -tags '$(TAGS)' ./...
	$(GO) test -tags '$(TAGS)' -count=1 ./...

# Benchmarks, e.g. group commit against one transaction per write.
bench:
	$(GO) test -tags '$(TAGS)' -run '^$$' -bench . -benchtime 2000x ./...

# Federation over bad links (cut/heal, delay, loss, rate) in ../shared/netbed; needs root.
netbed:
	FYR_NETBED=1 FYR_NETBED_SH=$(abspath $(SHARED))/netbed/netbed.sh $(GO) test -count=1 -v -run TestNetbed -timeout 15m ./server/

# Interop with a real Dendrite v0.13.8 over federation on loopback: users of each server
# create, join, talk in and leave rooms on the other (server/interop_test.go). Dendrite is
# built outside the repository by $(SHARED)/peers/dendrite.sh; FYR_DENDRITE_LOGS=DIR keeps its logs.
interop:
	@test -x $(PEERS_BIN)/dendrite || { echo "no Dendrite in $(PEERS_BIN): build it with $(SHARED)/peers/dendrite.sh build (PEERS_BIN=$(PEERS_BIN))"; exit 2; }
	FYR_DENDRITE_BIN=$(abspath $(PEERS_BIN)) $(GO) test -tags '$(TAGS)' -count=1 -v -run TestDendriteInterop -timeout 10m ./server/
# Interop with matrix-js-sdk (Element's SDK): /sync v2, sliding sync and Rust crypto against a
# real Fyr. Needs node and npm; the packages pinned in server/httpapi/testdata/jsclient install
# into the user cache once. Runs in the package directory so that the script's steps print.
jsclient:
	cd server/httpapi && FYR_JSCLIENT=1 $(GO) test -tags '$(TAGS)' -count=1 -run '^TestJSClient$$' -timeout 15m

# Static binaries for the boards Fyr runs on.
release:
	GOOS=linux GOARCH=amd64 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(DIST)/fyr-linux-amd64 ./cmd/fyr
	GOOS=linux GOARCH=arm64 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(DIST)/fyr-linux-arm64 ./cmd/fyr
	GOOS=linux GOARCH=arm GOARM=7 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(DIST)/fyr-linux-armv7 ./cmd/fyr
	@cd $(DIST) && sha256sum fyr-linux-amd64 fyr-linux-arm64 fyr-linux-armv7 > SHA256SUMS && cat SHA256SUMS

# A signed system update from the slot contents in SLOT (what one A/B slot holds):
#   make bundle KEY=release.key BUNDLE_VERSION=7 BUNDLE_BOARD=raspberrypi,4-model-b [SLOT=dist/slot]
# The version must be above every one the boxes installed; add more boards with BOARDS="--board …".
SLOT    ?= $(DIST)/slot
bundle: build
	@test -n "$(KEY)" -a -n "$(BUNDLE_VERSION)" -a -n "$(BUNDLE_BOARD)" || { echo "set KEY, BUNDLE_VERSION and BUNDLE_BOARD, e.g. make bundle KEY=release.key BUNDLE_VERSION=7 BUNDLE_BOARD=raspberrypi,4-model-b"; exit 2; }
	$(DIST)/fyr update sign --key $(KEY) --version $(BUNDLE_VERSION) --label $(VERSION) --board $(BUNDLE_BOARD) $(BOARDS) \
		-o $(DIST)/fyr-$(BUNDLE_VERSION).bundle $(SLOT)
# A bootable image for BOARD in $(DIST)/images/BOARD (see images/README.md). Downloads are
# pinned in images/pins and cached in ~/.cache/fyr-images.
image:
	@test -f images/$(BOARD)/build.sh || { echo "unknown BOARD=$(BOARD); try qemu-arm64, rpi4 or uefi-arm64"; exit 2; }
	GO="$(GO)" VERSION=$(VERSION) sh images/$(BOARD)/build.sh $(DIST)/images/$(BOARD)

# Build the image, then boot it under qemu (TCG) and check it: first answer, a power cut
# in a burst of messages, and on UEFI the A/B slots. Needs the tools .ci/run installs.
image-test: image
	FYR_BOOTTEST_BOARD=$(BOARD) FYR_BOOTTEST_IMAGE=$(abspath $(DIST)/images/$(BOARD)) \
		$(GO) test -count=1 -v -timeout 30m ./images/boottest/

# Conformance: run Complement against Fyr through $(SHARED)/complement-runner (needs root).
#   make complement COMPLEMENT=<complement mirror or checkout> [RUN='^TestLogin$$']
complement: build
	@test -n "$(COMPLEMENT)" || { echo "set COMPLEMENT to a Complement checkout or git mirror (fetch github:matrix-org/complement)"; exit 2; }
	rm -rf $(DIST)/complement && mkdir -p $(DIST)/complement
	cp $(DIST)/fyr images/complement/start.sh $(DIST)/complement/
	$(SHARED)/complement-runner/run.sh -c $(COMPLEMENT) -d $(DIST)/complement -s 'sh ./start.sh' \
		-o $(CURDIR)/$(DIST)/complement-results -j 2 -T 40m $(if $(RUN),-r '$(RUN)')

clean:
	rm -rf $(DIST)

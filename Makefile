GO ?= go
BIN := bin/gslb

# Version stamped into the binary (gslb version). Outside a git checkout the
# binary falls back to the module's build info.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
COMMIT  ?= $(shell git rev-parse HEAD 2>/dev/null)
# The commit's time, not the clock's: two builds of one commit are the same.
DATE    ?= $(shell git log -1 --format=%cd --date=format-local:%Y-%m-%dT%H:%M:%SZ 2>/dev/null)
LDFLAGS := -X main.version=$(VERSION) -X main.commit=$(COMMIT) -X main.date=$(DATE)

# `make install` puts gslb in $(go env GOBIN), else $(go env GOPATH)/bin;
# `make install PREFIX=/usr/local` in PREFIX/bin (DESTDIR for packagers).
PREFIX ?=
DESTDIR ?=

# Pinned tool versions (checked against the module proxy when set).
STATICCHECK_VERSION := v0.8.2
GOVULNCHECK_VERSION := v1.9.0
TOOLS := $(shell $(GO) env GOPATH)/bin
STATICCHECK := $(TOOLS)/staticcheck
GOVULNCHECK := $(TOOLS)/govulncheck

# Packages with concurrency, tested under the race detector.
RACE_PKGS := ./dnsserver/ ./gslb/ ./probes/ ./store/ ./proxy/ ./node/

DIST_ARCHS := amd64 arm64
IMAGE ?= gslb:$(VERSION)

.PHONY: build install test e2e race bench bench-proxy demo fuzz vet lint fmt-check \
	staticcheck tidy-check vulncheck tools dist image ci clean

build:
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/gslb

install:
ifeq ($(PREFIX),)
	$(GO) install -ldflags '$(LDFLAGS)' ./cmd/gslb
	@d="$$($(GO) env GOBIN)"; echo "installed $${d:-$(TOOLS)}/gslb"
else
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/gslb
	install -d $(DESTDIR)$(PREFIX)/bin
	install -m 0755 $(BIN) $(DESTDIR)$(PREFIX)/bin/gslb
endif

# Unit and in-process tests (no root, no external tools needed).
test:
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 15m ./...

# End-to-end tests: the built binary queried with real dig/kdig.
e2e: build
	GSLB_BIN=$(CURDIR)/$(BIN) $(GO) test -count=1 -timeout 20m -tags e2e ./integration/...

# The packages with goroutines and shared state, under the race detector.
race:
	$(GO) test -race -count=1 -timeout 20m $(RACE_PKGS)

bench: build
	$(GO) test -run '^$$' -bench . -benchmem ./dnsserver/ ./gslb/
	bash bench/dnsperf.sh

bench-proxy: build
	bash bench/proxy.sh

demo: build
	./$(BIN) demo

FUZZTIME ?= 60s
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzServe$$' -fuzztime $(FUZZTIME) ./dnsserver/
	$(GO) test -run '^$$' -fuzz '^FuzzWireParse$$' -fuzztime $(FUZZTIME) ./dnsserver/
	$(GO) test -run '^$$' -fuzz '^FuzzSignedReply$$' -fuzztime $(FUZZTIME) ./dnsserver/
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) ./zones/
	$(GO) test -run '^$$' -fuzz '^FuzzFastPathSame$$' -fuzztime $(FUZZTIME) ./zones/
	$(GO) test -run '^$$' -fuzz '^FuzzHTTPFront$$' -fuzztime $(FUZZTIME) ./proxy/
	$(GO) test -run '^$$' -fuzz '^FuzzParseFast$$' -fuzztime $(FUZZTIME) ./proxy/
	$(GO) test -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $(FUZZTIME) ./store/
	$(GO) test -run '^$$' -fuzz '^FuzzRestore$$' -fuzztime $(FUZZTIME) ./store/

vet:
	$(GO) vet ./...

# Static checks: formatting, vet, staticcheck, a tidy go.mod.
lint: fmt-check vet staticcheck tidy-check

fmt-check:
	@out="$$(gofmt -l .)"; if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

staticcheck: tools
	$(STATICCHECK) ./...

tidy-check:
	$(GO) mod tidy -diff

# govulncheck needs the vulnerability database (vuln.go.dev, or GOVULNDB):
# without it, it is skipped with a message rather than failing.
vulncheck: tools
	@db="$${GOVULNDB:-https://vuln.go.dev}"; \
	case "$$db" in \
	file://*) $(GOVULNCHECK) -db "$$db" ./... ;; \
	*) if curl -fsS --max-time 10 -o /dev/null "$$db/index/db.json" 2>/dev/null; then \
		$(GOVULNCHECK) -db "$$db" ./...; \
	else \
		echo "vulncheck: SKIPPED: the vulnerability database $$db cannot be reached from here (set GOVULNDB=file:///path to a local copy)"; \
	fi ;; \
	esac

# Installs the pinned tools when missing or at another version.
tools:
	@$(STATICCHECK) -version 2>/dev/null | grep -q '$(STATICCHECK_VERSION)' || \
		$(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
	@$(GOVULNCHECK) -version 2>/dev/null | grep -q 'govulncheck@$(GOVULNCHECK_VERSION)' || \
		$(GO) install golang.org/x/vuln/cmd/govulncheck@$(GOVULNCHECK_VERSION)

# Static Linux binaries with checksums, for releases.
dist:
	rm -rf dist && mkdir -p dist
	for arch in $(DIST_ARCHS); do \
		CGO_ENABLED=0 GOOS=linux GOARCH=$$arch $(GO) build -trimpath \
			-ldflags '-s -w $(LDFLAGS)' -o dist/gslb-$(VERSION)-linux-$$arch ./cmd/gslb || exit 1; \
	done
	cd dist && sha256sum gslb-* > SHA256SUMS && cat SHA256SUMS

# A FROM scratch image around the static linux/amd64 binary (podman or docker).
image:
	rm -rf dist/image && mkdir -p dist/image/data
	CGO_ENABLED=0 GOOS=linux GOARCH=amd64 $(GO) build -trimpath -ldflags '-s -w $(LDFLAGS)' -o dist/image/gslb ./cmd/gslb
	$${CONTAINER:-podman} build -f Dockerfile -t $(IMAGE) dist/image

# What CI runs (.ci/run installs the tools the end-to-end tests need first).
ci: lint vulncheck test race e2e

clean:
	rm -rf bin dist

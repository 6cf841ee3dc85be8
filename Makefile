GO ?= go
BIN := bin/gslb

.PHONY: build test e2e bench bench-proxy demo fuzz vet

build:
	$(GO) build -o $(BIN) ./cmd/gslb

# Unit and in-process tests (no root, no external tools needed).
test:
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 15m ./...

# End-to-end tests: the built binary queried with real dig/kdig.
e2e: build
	GSLB_BIN=$(CURDIR)/$(BIN) $(GO) test -count=1 -timeout 20m -tags e2e ./integration/...

bench: build
	$(GO) test -run '^$$' -bench . -benchmem ./dnsserver/ ./gslb/
	bash bench/dnsperf.sh

bench-proxy: build
	bash bench/proxy.sh

demo: build
	./$(BIN) demo

fuzz:
	$(GO) test -run '^$$' -fuzz FuzzServe -fuzztime 60s ./dnsserver/
	$(GO) test -run '^$$' -fuzz FuzzParse -fuzztime 60s ./zones/

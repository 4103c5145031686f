GO       ?= go
BIN      := bin
PKGS     := ./...
CONFIG   ?= packaging/l2tpd.toml
FUZZTIME ?= 10s

.PHONY: all build run test deps fmt-check vet unit fuzz bench lab-test lab-shell clean

all: build

build:
	$(GO) build -o $(BIN)/ ./cmd/...

# run: the server on the example config (an LNS on loopback; see README).
run: build
	$(BIN)/l2tpd --config $(CONFIG)

# test: everything CI runs: formatting, vet, unit and integration tests
# (network namespaces, xl2tpd, the qemu kernel lab) with the race detector,
# then every fuzz target for $(FUZZTIME). Installs the Debian packages the
# tests need when they are missing (needs root).
test: deps fmt-check vet build unit fuzz

deps:
	./scripts/install-test-deps.sh

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet $(PKGS)

unit:
	L2TPD_REQUIRE_INTEGRATION=1 $(GO) test -race -count=1 -timeout 25m $(PKGS)

fuzz:
	./scripts/fuzz-all.sh $(FUZZTIME)

bench:
	$(GO) test -run '^$$' -bench . -benchmem $(PKGS)

# The real-kernel lab on its own (see lab/ and shared LAB.md).
lab-test:
	L2TPD_REQUIRE_INTEGRATION=1 $(GO) test -count=1 -v ./lab/...

lab-shell:
	lab/run.sh -shell

clean:
	rm -rf $(BIN) build

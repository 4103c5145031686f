GO       ?= go
BIN      := bin
PKGS     := ./...
CONFIG   ?= packaging/l2tpd.toml
FUZZTIME ?= 10s

.PHONY: all build run test deps fmt-check vet unit fuzz bench lab-test lab-shell deb rpm clean

NFPM    ?= github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.43.0
VERSION ?= $(shell git describe --tags --always 2>/dev/null || echo 0.0.0)

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

# bench: the side-by-side load benchmarks (docs/benchmarks.md) and the Go
# micro-benchmarks of the hot paths, with allocations. Every figure of the
# page, the 100,000-session runs included (about 30 minutes in all);
# BENCH_100K=0 leaves those out.
bench: deps build
	BENCH_100K=$${BENCH_100K:-1} BENCH_100K_TIMEOUT=$${BENCH_100K_TIMEOUT:-9m} ./scripts/bench-all.sh
	./scripts/bench-lab.sh
	./scripts/bench-micro.sh

# The real-kernel lab on its own (see lab/ and shared LAB.md).
lab-test:
	L2TPD_REQUIRE_INTEGRATION=1 $(GO) test -count=1 -v ./lab/...

lab-shell:
	lab/run.sh -shell

# Packages, built with nFPM (run through go run: nothing to install).
deb: build
	VERSION=$(VERSION) $(GO) run $(NFPM) package -f packaging/nfpm.yaml -p deb -t $(BIN)/

rpm: build
	VERSION=$(VERSION) $(GO) run $(NFPM) package -f packaging/nfpm.yaml -p rpm -t $(BIN)/

clean:
	rm -rf $(BIN) build

GO      ?= go
BIN     := bin
PKGS    := ./...
CONFIG  ?= packaging/l2tpd.toml
FUZZTIME ?= 10s

.PHONY: all build run test unit integration fuzz vet fmt-check deps bench clean

all: build

build:
	$(GO) build -o $(BIN)/ ./cmd/...

run: build
	$(BIN)/l2tpd --config $(CONFIG)

# test: everything CI runs. Installs the Debian packages the tests need.
test: deps fmt-check vet build unit fuzz

deps:
	./scripts/install-test-deps.sh

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet $(PKGS)

unit:
	L2TPD_REQUIRE_INTEGRATION=1 $(GO) test -race -count=1 -timeout 20m $(PKGS)

# fuzz: every native fuzz target for a short time.
fuzz:
	./scripts/fuzz-all.sh $(FUZZTIME)

bench:
	$(GO) test -run '^$$' -bench . -benchmem $(PKGS)

clean:
	rm -rf $(BIN)

# dss-sync. `make run` starts a site on the embedded defaults; `make test`
# runs every test. See README.md.

# bash with pipefail: a benchmark that fails must fail `make bench`, not be
# hidden by the tee after it.
SHELL    := bash
.SHELLFLAGS := -o pipefail -c
GO       ?= go
BIN      := bin/dss-sync
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT   ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
LDFLAGS  := -s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT)
RUN_FLAGS ?= --log-format text
# Packages whose tests also run under the race detector.
CORE     := ./events/... ./projections/... ./internal/... ./api/...
FUZZTIME ?= 10s

.PHONY: build run test race lint bench fuzz soak check-clean clean

build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/dss-sync

run: build
	./$(BIN) serve $(RUN_FLAGS)

test:
	$(GO) test -count=1 -timeout 20m ./...

race:
	$(GO) test -count=1 -race -short -timeout 20m $(CORE)

lint:
	$(GO) vet ./...
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

# Benchmarks print each figure beside the raw ceiling measured in the same run;
# the other packages' micro-benchmarks follow; benchreport turns bench.txt
# into bench/REPORT.md and the plot bench/sizes.svg.
# The load benchmark drives the site with hey (installed into bin/).
HEY_VERSION ?= v0.1.5
bench:
	GOBIN=$(CURDIR)/bin $(GO) install github.com/rakyll/hey@$(HEY_VERSION)
	DSS_REQUIRE_HEY=1 $(GO) test -run '^$$' -bench . -benchtime 1x -timeout 30m ./cmd/dss-sync/ | tee bench.txt
	$(GO) test -run '^$$' -bench . -benchmem -timeout 10m $$($(GO) list ./... | grep -v /cmd/dss-sync$$) | tee -a bench.txt
	$(GO) run ./cmd/benchreport bench.txt

# Every fuzz target for FUZZTIME each (go test -fuzz takes one target at a time).
fuzz:
	@set -e; for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
	    echo "fuzz $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg; \
	  done; done

# Longer randomized runs than `make test` does.
soak:
	$(GO) test -count=1 -timeout 60m -run 'TestConvergence' ./projections/ -sim.seeds=5000
	$(GO) test -count=1 -timeout 60m -run 'TestRandomizedFaults' ./cmd/dss-sync/ -faults.seeds=500
	@for seed in 1 2 3 4 5; do \
	  out=$$($(GO) test -count=1 -timeout 30m -run 'TestFaultDrill' -v ./cmd/dss-sync/ -drill.seed=$$seed -drill.steps=80 2>&1) || { echo "$$out" | tail -n 100; exit 1; }; \
	  echo "$$out" | grep 'DRILL seed='; done

# Fails when go mod tidy or gofmt would change anything.
check-clean:
	$(GO) mod tidy
	gofmt -w $$(git ls-files '*.go')
	@git diff --exit-code -- go.mod go.sum $$(git ls-files '*.go') || { echo "go mod tidy or gofmt changed files: run them and commit"; exit 1; }

clean:
	rm -rf bin bench.txt

# capirelay Makefile. Every target works on a machine that has only Go, a JDK and
# Maven (for the real Kafka broker used by the tests); see README.md.

GO        ?= go
BIN       ?= bin
PKGS      ?= ./...
# Where the local Kafka launcher keeps its jars and its running broker's state.
# Outside the tree by default so a clean clone reuses the jar cache.
KAFKA_HOME ?= $(HOME)/.cache/capirelay/kafka
KAFKALOCAL = $(GO) run ./deploy/kafkalocal --home $(KAFKA_HOME)
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS    = -s -w -X main.version=$(VERSION)
TESTFLAGS ?= -count=1 -timeout 15m
MODULE    := github.com/capirelay/capirelay
# The concurrent packages run under the race detector (`make test`).
RACE_PKGS ?= ./consumer/ ./capi/ ./mapping/ ./schemas/
# Tests that must also hold on one CPU (GOMAXPROCS=1: one mapping worker).
CPU1_TESTS ?= Transient
BENCHFLAGS ?= -run '^$$' -bench . -benchmem -count 1

include tools.mk

.PHONY: all build test test-short lint bench kafka-up kafka-down kafka-jars demo clean tools image

all: lint build test

## build: static binaries of every command into ./bin (CGO off, version stamped).
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/ ./cmd/...

## test: install the pinned helm and promtool (Go module proxy, cached), start
## one real Kafka broker (unless KAFKA_BROKERS is set), run every package's
## tests against it (RACE_PKGS under the race detector, CPU1_TESTS again with
## -cpu 1), stop it. Fails if the broker does not come up or a tool is
## missing.
test: tools
	$(TOOLS_ENV) $(KAFKALOCAL) run -- sh -c '\
	  $(GO) test $(TESTFLAGS) -race $(RACE_PKGS) && \
	  $(GO) test $(TESTFLAGS) -race -cpu 1 -run "$(CPU1_TESTS)" ./consumer/ ./cmd/capirelay/ && \
	  $(GO) test $(TESTFLAGS) $$($(GO) list $(PKGS) | grep -v -x -F $(foreach p,$(RACE_PKGS),-e $(MODULE)/$(patsubst ./%/,%,$(p))))'

## test-short: fast tests only, no real broker (kfake where a broker is needed).
test-short:
	$(GO) test -short -count=1 $(PKGS)

## lint: gofmt and go vet; fails on any finding.
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)

## bench: every benchmark, against one real broker for the end-to-end ones;
## results to stdout (BENCHMARKS.md records them with the machine and inputs).
## CAPIRELAY_BENCH_RECORDS sets the end-to-end backlog size.
bench:
	$(KAFKALOCAL) run -- $(GO) test $(BENCHFLAGS) -timeout 60m $(PKGS)

## kafka-jars: fetch the Apache Kafka jars with Maven into KAFKA_HOME.
kafka-jars:
	$(KAFKALOCAL) jars

## kafka-up: start a local single-node KRaft broker on the JDK for development;
## prints its address. kafka-down stops it.
kafka-up:
	$(KAFKALOCAL) up

kafka-down:
	$(KAFKALOCAL) down

## demo: the embedded default (in-process Kafka, registry and API simulator).
demo:
	$(GO) run ./cmd/capirelay demo

IMAGE ?= capirelay:$(VERSION)
## image: the container image (needs Docker with BuildKit); same binaries as `make build`.
image:
	docker build -f deploy/Dockerfile --build-arg VERSION=$(VERSION) \
	  --build-arg REVISION=$$(git rev-parse HEAD 2>/dev/null || echo unknown) -t $(IMAGE) .

clean:
	rm -rf $(BIN)

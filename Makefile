# danmaku — build, run, test. `make run` and `make test` work on a fresh machine
# with Go 1.26 (and Redis for the tests that need it; .ci/run installs it).

GO      ?= go
BIN     := bin/danmaku
# Race-detector runs exit without the default 1 s sleep per test binary.
export GORACE ?= atexit_sleep_ms=0

.PHONY: all build run test test-short bench bench-go fmt lint cluster clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/danmaku

# One node with the embedded defaults: embedded NATS, in-memory state.
run: build
	$(BIN) serve --demo

# Everything, race detector on, fuzz seed corpora included.
test:
	$(GO) test -race -count=1 -timeout 20m ./...

# The quick loop while editing: no race detector, long soaks skipped.
test-short:
	$(GO) test -short -count=1 ./...

# The operators' load test against a local `danmaku serve`: the smoke
# scenario, pass or fail (SCENARIO=bench/scenarios/x.yaml for another).
bench: build
	deploy/local-bench.sh $(SCENARIO)

# Go benchmarks of the hot paths (codec, room manager, fan-out).
bench-go:
	$(GO) test -run '^$$' -bench . -benchmem ./room/... ./edge/... ./fanout/...

# Three nodes on loopback: embedded NATS servers clustered, the local Redis.
cluster: build
	deploy/local-cluster.sh

fmt:
	gofmt -w $$(git ls-files '*.go')

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

clean:
	rm -rf bin

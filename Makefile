# batchtrans: the two commands a newcomer needs are `make demo` and `make test`.
GO      ?= go
BIN     := bin/batchtrans
PKGS    := ./...
# Patched copies of libraries (see third_party/*/PATCHES.md): modules of
# their own that go.mod replaces, which ./... leaves out.
THIRD_PARTY := github.com/ardanlabs/jinja
export CGO_ENABLED := 0
FUZZTIME ?= 30s

.PHONY: all build build-static test test-gpu test-s3-real ptx test-purego deps demo bench lint fmt fuzz clean

all: build

build:
	$(GO) build -trimpath -o $(BIN) ./cmd/batchtrans

# build-static is the CPU-only binary with no CUDA backend: fully static
# (no glibc), for scratch and musl images.
build-static:
	$(GO) build -trimpath -tags nocuda -o $(BIN)-static ./cmd/batchtrans

# deps installs what the tests need beyond Go: DuckDB for Node.js, the
# independent reader/writer the io/ tests check every format against. It
# reinstalls only when the lockfile changed, so a second run is instant.
DUCKCHECK := io/internal/duckcheck
deps:
	@command -v npm >/dev/null || { echo "deps: npm (Node.js 20) is needed for the io tests' DuckDB check" >&2; exit 1; }
	@cmp -s $(DUCKCHECK)/package-lock.json $(DUCKCHECK)/node_modules/.installed-lock 2>/dev/null || \
		{ cd $(DUCKCHECK) && npm ci --no-audit --no-fund --loglevel=error && cp package-lock.json node_modules/.installed-lock; }

# The race detector needs cgo; the binary itself never does.
test: deps
	CGO_ENABLED=1 $(GO) test -race -count=1 $(PKGS) $(THIRD_PARTY)
	$(GO) test -count=1 -tags purego ./engine/...
	$(GO) test -count=1 -tags nocuda ./engine/device/ ./engine/
	$(GO) build -tags nocuda -o /dev/null ./cmd/batchtrans

# test-gpu runs the GPU tests (elsewhere they skip) and the GPU end-to-end
# checks, on a machine with an NVIDIA GPU (compute capability 8.0+).
test-gpu: build
	$(GO) test -count=1 -v -run 'Gemm|Attention|Forward|Invariance|Prefix|Prefill|KVFull|Parity|Graphs|GPU' ./engine/cuda/ ./engine/
	scripts/gpu/e2e.sh $(BIN)

# ptx regenerates the CUDA backend's embedded PTX after a kernel change
# (needs nvcc, CUDA 11.8 or later).
ptx:
	engine/cuda/csrc/gen.sh

# test-s3-real runs the object-storage tests against Versity's S3 gateway
# (installed into bin/ on first use) instead of the in-process server.
test-s3-real:
	scripts/s3-real.sh

# demo translates held-out Debian package descriptions English->German with
# the bundled tiny model and scores them against the human translations.
# On a terminal it shows the progress bar; elsewhere, progress log lines.
demo: build
	$(BIN) run examples/translate-de.yaml --restart
	$(GO) run ./examples/cmd/chrf examples/out/heldout-de.jsonl

bench: build
	$(GO) test -run '^$$' -bench . -benchmem ./engine/...

lint:
	$(GO) vet $(PKGS) $(THIRD_PARTY)
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (gofmt -l $$(git ls-files '*.go'); exit 1)

fmt:
	gofmt -w $$(git ls-files '*.go')

# fuzz runs every fuzz target for FUZZTIME each (e.g. make fuzz FUZZTIME=5m).
fuzz:
	FUZZTIME=$(FUZZTIME) scripts/fuzz.sh

clean:
	rm -rf bin

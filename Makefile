# kacme — see README.md. Every target installs or builds what it needs.
SHELL := /usr/bin/env bash
.SHELLFLAGS := -euo pipefail -c

GO          ?= go
DATA_DIR    ?= kacme-data
CONFIG_DIR  ?=
LISTEN      ?= 127.0.0.1:8443
HTTP_LISTEN ?= 127.0.0.1:8080
TEST_PKGS   ?= ./...
TEST_FLAGS  ?= -race -count=1 -timeout 30m
# test/e2e is its own Go module (cert-manager's controllers and their DNS SDKs
# stay out of kacme's); not built with -race (cert-manager's tree is large).
E2E_FLAGS   ?= -count=1 -timeout 45m

# Debian packages the interop tests drive (command:package).
TEST_DEBS := certbot:certbot lego:lego named:bind9 nsupdate:bind9-dnsutils dig:bind9-dnsutils openssl:openssl

.PHONY: all build image node run run-local helm-lint test test-e2e screenshots unit lint vet manifests generate verify-generated envtest docs-kubectl bench bench-scale fuzz clean help

all: build

help: ## list targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

# The release version is the chart's appVersion, so that the image, the chart
# and `kacme version` agree; the revision is the commit it was built from.
VERSION  ?= $(shell sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\}$$/\1/p' charts/kacme/Chart.yaml)
REVISION ?= $(shell (git rev-parse --short HEAD 2>/dev/null || echo unknown) | tr -d '\n'; git diff --quiet HEAD 2>/dev/null || echo -dirty)
VERSION_FLAGS = -X main.version=$(VERSION) -X main.revision=$(REVISION)
IMAGE_REPO      ?= ghcr.io/kacme/kacme
IMAGE_PLATFORMS ?= linux/amd64,linux/arm64

build: ## build bin/kacme
	$(GO) build -ldflags "$(VERSION_FLAGS)" -o bin/kacme ./cmd/kacme

image: ## container image without Docker: bin/image (OCI layout, linux/amd64 + linux/arm64 index) and bin/kacme-image.tar (OCI archive)
	for p in $$(echo $(IMAGE_PLATFORMS) | tr , ' '); do \
	  CGO_ENABLED=0 GOOS=$${p%/*} GOARCH=$${p#*/} $(GO) build -trimpath -ldflags "-s -w $(VERSION_FLAGS)" -o bin/platforms/$${p%/*}-$${p#*/}/kacme ./cmd/kacme; done
	$(GO) run ./hack/image -bin bin/platforms -platforms $(IMAGE_PLATFORMS) -repo $(IMAGE_REPO) -version $(VERSION) -revision $(REVISION) \
	  -out bin/image -archive bin/kacme-image.tar

run: build ## run the standalone CA + ACME server on https://127.0.0.1:8443
	@hack/ensure-packages.sh --soft certbot:certbot lego:lego
	bin/kacme standalone --data-dir $(DATA_DIR) --listen $(LISTEN) --http-listen "$(HTTP_LISTEN)" $(if $(CONFIG_DIR),--config-dir $(CONFIG_DIR))

run-local: build ## cluster mode without a cluster: local kube-apiserver + etcd, CRDs, samples, kacme controller + server
	@hack/ensure-packages.sh --soft lego:lego
	KUBEBUILDER_ASSETS="$$(hack/envtest.sh)" KACME_KUBECTL="$$(hack/kubectl.sh)" $(GO) run ./hack/localcluster -kacme bin/kacme

test: vet lint verify-generated image ## every test: unit, conformance, negative, fuzz seeds, real clients, the image, cert-manager e2e
	@hack/ensure-packages.sh $(TEST_DEBS)
	assets="$$(hack/envtest.sh)"; helm="$$(hack/tools.sh helm)"; step="$$(hack/tools.sh step)"; lint="$$(hack/tools.sh golangci-lint)"; \
	pebble="$$(hack/tools.sh pebble)"; \
	KUBEBUILDER_ASSETS="$$assets" KACME_HELM="$$helm" KACME_STEP="$$step" KACME_IMAGE="$(CURDIR)/bin/image" KACME_GOLANGCI_LINT="$$lint" \
	KACME_PEBBLE="$$pebble" \
	KACME_ENVTEST=required KACME_INTEROP=required $(GO) test $(TEST_FLAGS) $(TEST_PKGS)
	$(MAKE) --no-print-directory test-e2e

# What a real node needs from Debian besides what hack/node.sh builds.
NODE_DEBS := runc:runc iptables:iptables conntrack:conntrack ip:iproute2 nsenter:util-linux

test-e2e: image ## the real-node e2e (test/node: the image, the chart, pods); cert-manager v1.21.2's controllers against kacme; the dashboard in headless Chromium (test/e2e)
	@hack/ensure-packages.sh dig:bind9-dnsutils lego:lego chromium:chromium /usr/share/fonts/truetype/liberation:fonts-liberation $(NODE_DEBS)
	assets="$$(hack/envtest.sh)"; coredns="$$(hack/tools.sh coredns)"; helm="$$(hack/tools.sh helm)"; nodebin="$$(hack/node.sh)"; \
	cd test/e2e && KUBEBUILDER_ASSETS="$$assets" KACME_COREDNS="$$coredns" KACME_HELM="$$helm" KACME_NODE="$$nodebin" \
	  KACME_IMAGE_ARCHIVE="$(CURDIR)/bin/kacme-image.tar" KACME_ENVTEST=required KACME_INTEROP=required $(GO) test $(E2E_FLAGS) ./...

node: image ## a real single-node Kubernetes in a network namespace of its own, with kacme installed by its chart; Ctrl-C removes it all
	@hack/ensure-packages.sh $(NODE_DEBS)
	coredns="$$(hack/tools.sh coredns)"; helm="$$(hack/tools.sh helm)"; nodebin="$$(hack/node.sh)"; \
	$(GO) run ./hack/node -bin "$$nodebin" -image bin/kacme-image.tar -helm "$$helm" -coredns "$$coredns"

screenshots: build ## refresh docs/images/dashboard-*.png from the browser test (headless Chromium)
	@hack/ensure-packages.sh lego:lego chromium:chromium /usr/share/fonts/truetype/liberation:fonts-liberation
	cd test/e2e && KACME_SCREENSHOTS=$(CURDIR)/docs/images KACME_INTEROP=required $(GO) test -count=1 -run TestDashboardBrowser ./...
	rm -f docs/images/dashboard-login.png

unit: ## tests without requiring the interop tools or envtest (those tests skip)
	$(GO) test $(TEST_FLAGS) $(TEST_PKGS)

vet: ## gofmt + go vet (lint: golangci-lint)
	@out="$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))"; if [[ -n "$$out" ]]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	cd test/e2e && $(GO) vet ./...

lint: ## golangci-lint (pinned)
	lint="$$(hack/tools.sh golangci-lint)"; "$$lint" run --allow-parallel-runners ./... && cd test/e2e && "$$lint" run --allow-parallel-runners ./...

generate: ## deepcopy functions
	"$$(hack/tools.sh controller-gen)" object:headerFile=hack/boilerplate.go.txt paths=./api/...

manifests: ## CRDs, RBAC, the chart's copies of both, config/default rendered from the chart
	"$$(hack/tools.sh controller-gen)" crd paths=./api/... output:crd:artifacts:config=config/crd/bases
	"$$(hack/tools.sh controller-gen)" rbac:roleName=kacme-controller paths=./controllers/... output:rbac:artifacts:config=config/rbac/controller
	"$$(hack/tools.sh controller-gen)" rbac:roleName=kacme-server paths=./acmeserver/cluster/... output:rbac:artifacts:config=config/rbac/server
	@# The Helm chart carries copies: CRDs as they are, RBAC rules read by its templates.
	rm -f charts/kacme/crds/*.yaml && cp config/crd/bases/*.yaml charts/kacme/crds/
	cp config/rbac/controller/role.yaml charts/kacme/files/rbac/controller.yaml
	cp config/rbac/server/role.yaml charts/kacme/files/rbac/server.yaml
	@# config/default (kubectl apply -k) is the chart rendered with its defaults.
	{ echo "# Generated by make manifests: helm template kacme charts/kacme --namespace kacme-system --skip-crds"; \
	  "$$(hack/tools.sh helm)" template kacme charts/kacme --namespace kacme-system --skip-crds; } > config/default/kacme.yaml

verify-generated: generate manifests ## generated files are up to date
	@if [[ -d .git ]] && [[ -n "$$(git status --porcelain -- api config charts)" ]]; then git status --short -- api config charts; echo "generated files are stale: run make generate manifests and commit"; exit 1; fi

envtest: ## build kube-apiserver v1.37.2 + etcd v3.7.3 for envtest (cached); prints KUBEBUILDER_ASSETS
	@hack/envtest.sh

docs-kubectl: ## refresh the real kubectl output in docs/kubernetes.md (builds kubectl once)
	kubectl="$$(hack/kubectl.sh)"; assets="$$(hack/envtest.sh)"; \
	KACME_KUBECTL="$$kubectl" KACME_KUBECTL_OUT=$(CURDIR)/bin/kubectl-out.txt KUBEBUILDER_ASSETS="$$assets" KACME_ENVTEST=required \
	  $(GO) test -count=1 -run TestClusterModeIssuance ./test/integration/
	@echo "paste bin/kubectl-out.txt into docs/kubernetes.md"

bench: build ## load test kacme vs Pebble vs step-ca, and kacme in cluster mode; writes docs/benchmarks.md
	KUBEBUILDER_ASSETS="$$(hack/envtest.sh)" $(GO) run ./test/bench/cmd/acmebench -kacme bin/kacme \
	  -pebble "$$(hack/tools.sh pebble)" -step-ca "$$(hack/tools.sh step-ca)" -step "$$(hack/tools.sh step)" -out docs/benchmarks.md

SCALE ?= 100000
SCALE_STEADY ?= 10m
SCALE_MODES ?= standalone,cluster

bench-scale: build ## store SCALE (100000) issuances in kacme standalone and in cluster mode, restart, measure RSS, dashboard and issuance; writes docs/benchmarks-scale.md
	KUBEBUILDER_ASSETS="$$(hack/envtest.sh)" $(GO) run ./test/bench/cmd/acmebench -kacme bin/kacme -targets none -scale $(SCALE) \
	  -scale-steady $(SCALE_STEADY) -scale-modes $(SCALE_MODES) -out docs/benchmarks-scale.md

FUZZTIME ?= 10m
FUZZ_TARGETS := ./acmeserver/jws:FuzzParse ./acmeserver/jws:FuzzParseEAB ./acmeserver/jws:FuzzUniqueMembers ./acmeserver/ra:FuzzParseCSR ./acmeserver/va:FuzzCNAMEWalk ./acmeserver/ocsp:FuzzParseRequest

fuzz: ## run every fuzz target for FUZZTIME each (default 10m; not part of make test, which runs their seeds)
	@for t in $(FUZZ_TARGETS); do pkg="$${t%%:*}"; name="$${t##*:}"; \
	  echo "== $$name ($$pkg, $(FUZZTIME))"; \
	  $(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) "$$pkg" || exit 1; done

helm-lint: ## helm lint the chart (helm built once, pinned)
	"$$(hack/tools.sh helm)" lint --strict charts/kacme

clean:
	rm -rf bin

# kacme — see README.md. Every target installs or builds what it needs.
SHELL := /usr/bin/env bash
.SHELLFLAGS := -euo pipefail -c

GO          ?= go
DATA_DIR    ?= kacme-data
CONFIG_DIR  ?=
LISTEN      ?= 127.0.0.1:8443
TEST_PKGS   ?= ./...
TEST_FLAGS  ?= -race -count=1 -timeout 30m
# test/e2e is its own Go module (cert-manager's controllers and their DNS SDKs
# stay out of kacme's); not built with -race (cert-manager's tree is large).
E2E_FLAGS   ?= -count=1 -timeout 20m

# Debian packages the interop tests drive (command:package).
TEST_DEBS := certbot:certbot lego:lego named:bind9 nsupdate:bind9-dnsutils dig:bind9-dnsutils

.PHONY: all build run run-local helm-lint test test-e2e unit lint vet manifests generate verify-generated envtest docs-kubectl bench clean help

all: build

help: ## list targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)

build: ## build bin/kacme
	$(GO) build -ldflags "-X main.version=$(VERSION)" -o bin/kacme ./cmd/kacme

run: build ## run the standalone CA + ACME server on https://127.0.0.1:8443
	@hack/ensure-packages.sh --soft certbot:certbot lego:lego
	bin/kacme standalone --data-dir $(DATA_DIR) --listen $(LISTEN) $(if $(CONFIG_DIR),--config-dir $(CONFIG_DIR))

run-local: build ## cluster mode without a cluster: local kube-apiserver + etcd, CRDs, samples, kacme controller + server
	@hack/ensure-packages.sh --soft lego:lego
	KUBEBUILDER_ASSETS="$$(hack/envtest.sh)" KACME_KUBECTL="$$(hack/kubectl.sh)" $(GO) run ./hack/localcluster -kacme bin/kacme

test: vet lint verify-generated ## every test: unit, conformance, negative, fuzz seeds, real clients, cert-manager e2e
	@hack/ensure-packages.sh $(TEST_DEBS)
	assets="$$(hack/envtest.sh)"; helm="$$(hack/tools.sh helm)"; \
	KUBEBUILDER_ASSETS="$$assets" KACME_HELM="$$helm" KACME_ENVTEST=required KACME_INTEROP=required $(GO) test $(TEST_FLAGS) $(TEST_PKGS)
	$(MAKE) --no-print-directory test-e2e

test-e2e: ## cert-manager v1.21.2's controllers against kacme in cluster mode (test/e2e, CoreDNS built once)
	@hack/ensure-packages.sh dig:bind9-dnsutils
	assets="$$(hack/envtest.sh)"; coredns="$$(hack/tools.sh coredns)"; \
	cd test/e2e && KUBEBUILDER_ASSETS="$$assets" KACME_COREDNS="$$coredns" KACME_ENVTEST=required KACME_INTEROP=required $(GO) test $(E2E_FLAGS) ./...

unit: ## tests without requiring the interop tools or envtest (those tests skip)
	$(GO) test $(TEST_FLAGS) $(TEST_PKGS)

vet: ## gofmt + go vet (lint: golangci-lint)
	@out="$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))"; if [[ -n "$$out" ]]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	cd test/e2e && $(GO) vet ./...

lint: ## golangci-lint (pinned)
	lint="$$(hack/tools.sh golangci-lint)"; "$$lint" run ./... && cd test/e2e && "$$lint" run ./...

generate: ## deepcopy functions
	"$$(hack/tools.sh controller-gen)" object:headerFile=hack/boilerplate.go.txt paths=./api/...

manifests: ## CRDs and RBAC
	"$$(hack/tools.sh controller-gen)" crd paths=./api/... output:crd:artifacts:config=config/crd/bases
	"$$(hack/tools.sh controller-gen)" rbac:roleName=kacme-controller paths=./controllers/... output:rbac:artifacts:config=config/rbac/controller
	"$$(hack/tools.sh controller-gen)" rbac:roleName=kacme-server paths=./acmeserver/cluster/... output:rbac:artifacts:config=config/rbac/server
	@# The Helm chart carries copies: CRDs as they are, RBAC rules read by its templates.
	rm -f charts/kacme/crds/*.yaml && cp config/crd/bases/*.yaml charts/kacme/crds/
	cp config/rbac/controller/role.yaml charts/kacme/files/rbac/controller.yaml
	cp config/rbac/server/role.yaml charts/kacme/files/rbac/server.yaml

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
	  -pebble "$$(hack/tools.sh pebble)" -step-ca "$$(hack/tools.sh step-ca)" -out docs/benchmarks.md

helm-lint: ## helm lint the chart (helm built once, pinned)
	"$$(hack/tools.sh helm)" lint --strict charts/kacme

clean:
	rm -rf bin

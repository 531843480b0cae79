# tools.mk: pinned external tools for the deploy tests (deploy/deploy_test.go),
# installed from the Go module proxy into ~/.cache/capirelay/bin (outside the
# tree, so a fresh clone on the same machine reuses them).
# Included by the Makefile (`include tools.mk`). A version bump reinstalls:
# the stamp file names the version.
#
#   make tools     install helm and promtool
#
# GO is the Makefile's (default: go).

GO               ?= go
TOOLS_BIN        ?= $(HOME)/.cache/capirelay/bin
HELM_VERSION     ?= v3.22.0
PROMTOOL_VERSION ?= v0.316.0
HELM             := $(TOOLS_BIN)/helm
PROMTOOL         := $(TOOLS_BIN)/promtool
HELM_STAMP       := $(TOOLS_BIN)/.helm-$(HELM_VERSION)
PROMTOOL_STAMP   := $(TOOLS_BIN)/.promtool-$(PROMTOOL_VERSION)

# Environment for go test: where the tools are, and that their absence is a
# failure (not a skip).
TOOLS_ENV = HELM=$(HELM) PROMTOOL=$(PROMTOOL) CAPIRELAY_REQUIRE_TOOLS=1

.PHONY: tools

## tools: install the pinned helm and promtool into ~/.cache/capirelay/bin.
tools: $(HELM_STAMP) $(PROMTOOL_STAMP)

$(HELM_STAMP):
	@mkdir -p $(TOOLS_BIN)
	GOBIN=$(TOOLS_BIN) $(GO) install helm.sh/helm/v3/cmd/helm@$(HELM_VERSION)
	@rm -f $(TOOLS_BIN)/.helm-* && touch $@

$(PROMTOOL_STAMP):
	@mkdir -p $(TOOLS_BIN)
	GOBIN=$(TOOLS_BIN) $(GO) install github.com/prometheus/prometheus/cmd/promtool@$(PROMTOOL_VERSION)
	@rm -f $(TOOLS_BIN)/.promtool-* && touch $@

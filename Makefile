# The two commands of the README: `make demo` and `make test`.
# Each sets up what it needs: a .venv with topogen installed, and (when root) the Debian
# packages the workflow calls. Nothing here prompts (CI=true runs it unattended).

SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.topogen-installed
DEB_PACKAGES := quantum-espresso wannier90 slurm-wlm munge libpmix-dev
TEST_DEB_PACKAGES := chromium  # the report test renders results/report.html in it
PYTEST_ARGS ?=
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: demo test test-fast lint install install-profile system-deps test-deps clean

demo: install system-deps  ## the main job end to end on the embedded default config (offline)
	$(BIN)/snakemake --cores all
	$(BIN)/snakemake --report results/report.html
	@echo "the report (figures with captions): $(abspath results/report.html)"
	@echo "DFT verdicts (candidates and controls): $(abspath results/dft/summary.csv)"
	@echo "screening funnels (one per generator): $(abspath results/screen)/<generator>/funnel.parquet; timings: results/benchmarks/"

test: install system-deps test-deps lint  ## ruff + import contracts, then the whole test suite (slow included)
	$(BIN)/pytest $(PYTEST_ARGS)

test-fast: install  ## the test suite without the slow integration tests
	$(BIN)/pytest -m "not slow" $(PYTEST_ARGS)

lint: install  ## ruff, and the layer order of DESIGN.md (import contracts in pyproject.toml)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/lint-imports

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || { echo "creating $(VENV) with $(PYTHON)"; $(PYTHON) -m venv $(VENV); }
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[ml,test,bench]'
	@touch $@

system-deps:
	@missing=""; for p in $(DEB_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing Debian packages:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	else \
	  echo "note: not root (or no apt-get): skipping Debian packages$$missing;" \
	       "the DFT and SLURM steps and their tests will be skipped"; \
	fi

test-deps:
	@$(MAKE) --no-print-directory system-deps DEB_PACKAGES="$(TEST_DEB_PACKAGES)"

install-profile:  ## let `snakemake --profile slurm` find profiles/slurm
	mkdir -p $${XDG_CONFIG_HOME:-$$HOME/.config}/snakemake
	ln -sfn $(abspath profiles/slurm) $${XDG_CONFIG_HOME:-$$HOME/.config}/snakemake/slurm

clean:  ## remove workflow outputs (not the venv)
	rm -rf results .snakemake

# onexen — every target installs what it needs when it is missing, so a fresh
# Debian 12 machine (root, Python 3.11) needs nothing but `make demo` / `make test`.

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STATE := .onexen
VENV_STAMP := $(VENV)/.installed
APT_STAMP := $(STATE)/apt.installed

# Debian packages the suite and the demo use:
#   openssh-server   the real sshd in front of every simulated Xen host
#   openssh-client   ssh for migrations between simulated hosts
#   xen-utils-4.17   the real libxl config parser (`xl -N create`)
#   gcc, libc6-dev   to build the small preload shim that lets `xl -N` run without Xen
#   iproute2 procps  network namespaces and process tools used by tests
#   python3-venv     Debian's python3 makes no virtualenv without it
APT_PACKAGES := openssh-server openssh-client xen-utils-4.17 gcc libc6-dev iproute2 procps coreutils python3-venv

PYTEST_FLAGS ?= -q -p no:cacheprovider

.PHONY: help install demo up test test-fast test-xen pytest lint protos check-protos compose-check bench clean

help:
	@echo "make demo          start the stack, show it working, stop it"
	@echo "make test          install what is missing and run the whole suite (real Xen tier included)"
	@echo "make test-fast     the quick tiers only (no sshd, no subprocess services)"
	@echo "make test-xen      the real Xen 4.17 tier under QEMU (make xenlab-up/xenlab-down to keep a lab)"
	@echo "make up            run three services and two simulated Xen hosts in the foreground"
	@echo "make protos        regenerate onexen/v1 from protos/"
	@echo "make check-protos  fail when onexen/v1 is stale"
	@echo "make lint          ruff + mypy"
	@echo "make bench         run every benchmark under bench/, results in bench/results/"
	@echo "make install-opennebula  install one_vmm_grpc/one_im_grpc and their config for oned/monitord"

install: $(VENV_STAMP) $(APT_STAMP)

# Each package is checked with dpkg so a machine that has them all pays nothing.
$(APT_STAMP):
	@mkdir -p $(STATE)
	@missing=""; for p in $(APT_PACKAGES); do \
	    dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	    if [ "$$(id -u)" != 0 ]; then echo "missing Debian packages:$$missing — run as root: apt-get install -y$$missing" >&2; exit 1; fi; \
	    echo "installing Debian packages:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi
	@touch $@

$(VENV_STAMP): pyproject.toml $(APT_STAMP)
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install -q --disable-pip-version-check --upgrade pip
	@$(PY) -m pip install -q --disable-pip-version-check -e '.[dev]' --config-settings editable_mode=compat
	@touch $@

demo: install
	@$(PY) -m stack demo

up: install
	@$(PY) -m stack up

protos: $(VENV_STAMP)
	@tools/genprotos.sh .
	@echo "regenerated onexen/v1"

check-protos: $(VENV_STAMP)
	@tmp=$$(mktemp -d); trap 'rm -rf $$tmp' EXIT; \
	tools/genprotos.sh $$tmp >/dev/null; \
	if ! diff -r -q -x __pycache__ $$tmp/onexen/v1 onexen/v1; then \
	    echo "onexen/v1 is stale: run 'make protos' and commit the result" >&2; exit 1; fi; \
	echo "generated code matches protos/"

lint: $(VENV_STAMP)
	@$(VENV)/bin/ruff check .
	@$(VENV)/bin/ruff format --check .
	@$(VENV)/bin/mypy

compose-check: $(VENV_STAMP)
	@$(VENV)/bin/check-jsonschema --builtin-schema vendor.compose-spec docker-compose.yml

# Everything but the real-Xen tier, which `make test` runs after it (test-xen).
pytest: install
	@$(PY) -m pytest $(PYTEST_FLAGS) -m "not xen"

test: install check-protos lint compose-check pytest test-xen

# The real Xen 4.17 tier (tools/xenlab): builds the cached lab first, so its first build
# (minutes) stays outside pytest's timeouts; a machine that cannot run it fails the target.
# A lab this target started is stopped whatever happens (the tests stop it too; this covers
# a pytest that was killed); a lab someone else started (make xenlab-up) is left running.
test-xen: install
	@$(PYTHON) $(XENLAB) build
	@running=0; $(PYTHON) $(XENLAB) status >/dev/null 2>&1 && running=1; \
	XENLAB_REQUIRED=1 $(PY) -m pytest $(PYTEST_FLAGS) --tb=short -m xen tests/xen; rc=$$?; \
	[ $$running = 1 ] || $(PYTHON) $(XENLAB) down >/dev/null 2>&1; exit $$rc

test-fast: install
	@$(PY) -m pytest $(PYTEST_FLAGS) -m "not slow and not xen"

bench: install
	@mkdir -p bench/results
	@set -e; for b in bench/bench_*.py; do [ -e "$$b" ] || continue; echo "== $$b"; $(PY) "$$b"; done

clean: xenlab-down
	rm -rf $(STATE) build *.egg-info

include tools/xenlab/xenlab.mk

# Operators: the OpenNebula drivers and their configuration (see README, "OpenNebula").
include adapter/install.mk
install-opennebula: $(VENV_STAMP)

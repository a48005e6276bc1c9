# `make install-opennebula`: the OpenNebula drivers (one_vmm_grpc, one_im_grpc), the Xen
# driver defaults file and the oned.conf / monitord.conf snippets, where OpenNebula looks.
#
#   make install-opennebula                          system-wide (/usr/lib/one/mads, /etc/one)
#   make install-opennebula ONE_LOCATION=/opt/one    a self-contained OpenNebula
#   make install-opennebula DESTDIR=/tmp/x           under a staging root (packaging, tests)
#   ONEXEN_PYTHON=/usr/bin/python3                   the interpreter the drivers run
#                                                    (default: this checkout's .venv)
#
# Included by the top-level Makefile; also usable alone: make -f adapter/install.mk ...

ONEXEN_ADAPTER_ROOT := $(abspath $(dir $(lastword $(MAKEFILE_LIST)))/..)
ONEXEN_PYTHON ?= $(ONEXEN_ADAPTER_ROOT)/.venv/bin/python
ONEXEN_SHARE_SOURCE := $(ONEXEN_ADAPTER_ROOT)/share/opennebula

ifneq ($(strip $(ONE_LOCATION)),)
ONE_MADS_DIR ?= $(ONE_LOCATION)/lib/mads
ONE_ETC_DIR ?= $(ONE_LOCATION)/etc
ONE_SHARE_DIR ?= $(ONE_LOCATION)/share/onexen
else
ONE_MADS_DIR ?= /usr/lib/one/mads
ONE_ETC_DIR ?= /etc/one
ONE_SHARE_DIR ?= /usr/share/one/onexen
endif

.PHONY: install-opennebula

install-opennebula:
	@install -d -m 755 "$(DESTDIR)$(ONE_MADS_DIR)" "$(DESTDIR)$(ONE_ETC_DIR)/vmm_exec" "$(DESTDIR)$(ONE_SHARE_DIR)"
	@for mad in vmm im; do \
	    target="$(DESTDIR)$(ONE_MADS_DIR)/one_$${mad}_grpc"; \
	    printf '#!/bin/sh\n# one_%s_grpc: OpenNebula driver for Xen through onexen (make install-opennebula).\n# oned passes ARGUMENTS as one argument; the driver splits it.\nexec %s -m adapter.%s.main "$$@"\n' \
	        "$$mad" "'$(ONEXEN_PYTHON)'" "$$mad" > "$$target.tmp" && chmod 755 "$$target.tmp" && mv -f "$$target.tmp" "$$target" || exit 1; \
	    echo "installed $$target"; \
	done
	@defaults="$(DESTDIR)$(ONE_ETC_DIR)/vmm_exec/vmm_exec_xen.conf"; \
	if [ -e "$$defaults" ] && ! cmp -s "$$defaults" "$(ONEXEN_SHARE_SOURCE)/vmm_exec/vmm_exec_xen.conf"; then \
	    install -m 644 "$(ONEXEN_SHARE_SOURCE)/vmm_exec/vmm_exec_xen.conf" "$$defaults.onexen-new"; \
	    echo "kept $$defaults (yours); the shipped one is $$defaults.onexen-new"; \
	else \
	    install -m 644 "$(ONEXEN_SHARE_SOURCE)/vmm_exec/vmm_exec_xen.conf" "$$defaults"; \
	    echo "installed $$defaults"; \
	fi
	@for file in oned-vm_mad-xen.conf monitord-im_mad-xen.conf README.md; do \
	    install -m 644 "$(ONEXEN_SHARE_SOURCE)/$$file" "$(DESTDIR)$(ONE_SHARE_DIR)/$$file" || exit 1; \
	done
	@echo "installed the VM_MAD and IM_MAD snippets in $(DESTDIR)$(ONE_SHARE_DIR):"
	@echo "  add oned-vm_mad-xen.conf to oned.conf, monitord-im_mad-xen.conf to monitord.conf, then"
	@echo "  onehost create <host> -i xen -v xen"

# onexen Xen lab targets (tools/xenlab/README.md). The Makefile includes this fragment.
#   make xenlab-build   build the cached dom0 image (idempotent; about 100 s from empty, then nothing)
#   make xenlab-up      build if needed, start $(XENLAB_HOSTS) host(s), write .onexen/xenlab.json
#   make xenlab-down    stop exactly what xenlab-up started (idempotent)
#   make xenlab-check   can this machine run the lab? (exit 77 and a one-line reason when not)
# xenlab runs with the system python3 (standard library only) and installs with apt what it misses.
# Exit codes: 0 ok, 1 failed (the serial log tail is printed), 77 this machine cannot run the lab.

XENLAB := tools/xenlab/xenlab
XENLAB_HOSTS ?= 2

.PHONY: xenlab-build xenlab-up xenlab-down xenlab-check xenlab-status

xenlab-build:
	@$(PYTHON) $(XENLAB) build

xenlab-up:
	@$(PYTHON) $(XENLAB) up --hosts $(XENLAB_HOSTS)

xenlab-down:
	@$(PYTHON) $(XENLAB) down

xenlab-check:
	@$(PYTHON) $(XENLAB) check --hosts $(XENLAB_HOSTS)

xenlab-status:
	@$(PYTHON) $(XENLAB) status

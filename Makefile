# `make demo` and `make test` each create/refresh .venv, then run.
# GPU users: create .venv and install the torch for your CUDA first
#   (python3 -m venv .venv && .venv/bin/pip install torch --index-url ...);
# the install step below keeps any torch already there.
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH ?= torch==2.13.0
DEMO_DIR ?= runs/demo

.PHONY: demo test lint bench clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip show torch >/dev/null 2>&1 || $(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -q -e ".[models,report,dev]"
	touch $@

# DEMO_PROCS > 1 shares the demo's stages out over that many processes (torchrun, gloo on
# CPU, one thread each). On 2 cores one process with torch's 2 threads is faster (README:
# 340 s vs ~436 s; the classifier embedder trains on rank 0 alone while the other waits).
DEMO_PROCS ?= 1

demo: $(VENV)/.installed
ifeq ($(DEMO_PROCS),1)
	$(VENV)/bin/vidistill demo --out $(DEMO_DIR)
else
	$(VENV)/bin/torchrun --standalone --nproc_per_node $(DEMO_PROCS) -m vidistill.cli demo --out $(DEMO_DIR)
endif

test: $(VENV)/.installed
	$(PY) -m pytest

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check src tests benchmarks

bench: $(VENV)/.installed
	for f in benchmarks/bench_*.py; do $(PY) $$f || exit 1; done

clean:
	rm -rf $(VENV) runs .pytest_cache

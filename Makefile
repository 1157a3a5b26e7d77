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

# the demo's stages share out over DEMO_PROCS processes (torchrun, gloo on CPU; 1 = plain)
DEMO_PROCS ?= 2

demo: $(VENV)/.installed
	$(VENV)/bin/torchrun --standalone --nproc_per_node $(DEMO_PROCS) -m vidistill.cli demo --out $(DEMO_DIR)

test: $(VENV)/.installed
	$(PY) -m pytest

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check src tests benchmarks

bench: $(VENV)/.installed
	for f in benchmarks/bench_*.py; do $(PY) $$f || exit 1; done

clean:
	rm -rf $(VENV) runs .pytest_cache

# Developer entry points. `make test` works in a fresh clone (it bootstraps .venv and a host).
# LANE picks the host: `pinned` (default, ComfyUI a28a9dc8, 2024-03, in .venv) or `v0.3.75`
# (ComfyUI v0.3.75, 2025-12, in .venv-v0.3.75). `make test-all` runs every lane.
PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
LANE ?= pinned
LANES := pinned v0.3.75
VENV := $(if $(filter pinned,$(LANE)),.venv,.venv-$(LANE))
VENV_PY := $(VENV)/bin/python
PYTEST_ARGS ?=
# Two pytest workers on the two cores (a test file per worker, its tests in order); 0 = one process.
# Every run lists its 15 slowest tests (--durations), to keep the suite's time in view.
WORKERS ?= 2

.PHONY: bootstrap test test-all lint demo bench clean-env

bootstrap:
	$(PYTHON) scripts/bootstrap.py --lane $(LANE)

test: bootstrap
	$(VENV_PY) -m ruff check .
	$(VENV_PY) -m pytest -q tests $(if $(filter 0,$(WORKERS)),,-n $(WORKERS) --dist loadfile) --durations=15 $(PYTEST_ARGS)

test-all:
	@set -e; for lane in $(LANES); do echo "[make] lane $$lane"; $(MAKE) --no-print-directory test LANE=$$lane; done

lint: bootstrap
	$(VENV_PY) -m ruff check .

demo: bootstrap
	$(VENV_PY) -m scripts.demo

# Cost of every control against plain sampling: full-width SD1.5 architecture, random weights.
BENCH_ARGS ?= --model full --size 128 --steps 3 --repeats 2 --json bench.json
bench: bootstrap
	$(VENV_PY) -m scripts.bench $(BENCH_ARGS)

clean-env:
	rm -rf .venv .venv-* .host

# Developer entry points. `make test` works in a fresh clone (it bootstraps .venv and a host).
PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV_PY := .venv/bin/python
PYTEST_ARGS ?=

.PHONY: bootstrap test demo bench clean-env

bootstrap:
	$(PYTHON) scripts/bootstrap.py

test: bootstrap
	$(VENV_PY) -m pytest -q tests $(PYTEST_ARGS)

demo: bootstrap
	$(VENV_PY) -m scripts.demo

# Cost of every control against plain sampling: full-width SD1.5 architecture, random weights.
BENCH_ARGS ?= --model full --size 128 --steps 3 --repeats 2 --json bench.json
bench: bootstrap
	$(VENV_PY) -m scripts.bench $(BENCH_ARGS)

clean-env:
	rm -rf .venv .host

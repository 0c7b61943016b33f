# driftrank: `make demo` and `make test` set themselves up from a clean clone.
PYTHON ?= python3.11
VENV   ?= .venv
PY      = $(VENV)/bin/python
STAMP   = $(VENV)/.driftrank-installed

.PHONY: demo study test lint bench setup clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || (command -v $(PYTHON) >/dev/null 2>&1 && $(PYTHON) -m venv $(VENV)) || python3 -m venv $(VENV)
	$(PY) -m pip install --upgrade pip >/dev/null
	$(PY) -m pip install torch==2.13.0
	$(PY) -m pip install -e '.[dev]'
	@touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/driftrank demo

study: $(STAMP)
	$(VENV)/bin/driftrank study --launcher ray

test: $(STAMP)
	$(PY) -m pytest -q tests

lint: $(STAMP)
	$(VENV)/bin/ruff check .

bench: $(STAMP)
	$(VENV)/bin/driftrank bench env

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info

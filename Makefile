PYTHON ?= python3
VENV ?= .venv
CONSTRAINTS ?= constraints.txt
BIN := $(VENV)/bin
# the demo needs the lab and the fast kernels; the tests add the dev tools; Ray only for its own test
DEMO_STAMP := $(VENV)/.installed-demo
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench setup setup-ray clean

setup: $(STAMP)

$(DEMO_STAMP): pyproject.toml $(CONSTRAINTS)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c $(CONSTRAINTS) -e ".[lab,fast]"
	touch $(DEMO_STAMP)

$(STAMP): $(DEMO_STAMP)
	$(BIN)/python -m pip install --quiet -c $(CONSTRAINTS) -e ".[lab,dev,fast]"
	touch $(STAMP)

# Ray runs the executor test of tests/test_compare.py (skipped without it)
setup-ray: $(STAMP)
	$(BIN)/python -m pip install --quiet -c $(CONSTRAINTS) -e ".[lab,dev,fast,ray]"

demo: $(DEMO_STAMP)
	$(BIN)/initlab list
	$(BIN)/python -m initlab.demo
	$(BIN)/initlab claims --quick --threads 1 --out runs/claims-quick

test: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/mypy
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	for b in benchmarks/bench_*.py; do $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info .pytest_cache .mypy_cache .ruff_cache

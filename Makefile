# The README's two commands: `make run` (install, then the demo: collector on the embedded store,
# a small distributed system, a fault, and what `steth why` finds) and `make test` (install,
# then every check and test). Both create their own virtualenv.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	# Bytecode as a regular install has it: where PYTHONDONTWRITEBYTECODE is set, an editable
	# install compiled every module on every command (6-21 ms of CPU of each `steth trace`).
	$(BIN)/python -m compileall -q stethoscope
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/steth demo --data .steth-demo

test: $(STAMP)
	$(BIN)/ruff check stethoscope tests benchmarks
	$(BIN)/mypy
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	$(BIN)/python benchmarks/ingest.py
	$(BIN)/python benchmarks/templates.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache

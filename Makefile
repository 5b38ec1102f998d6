# The README's two commands: `make run` and `make test`. Both create the virtual environment first,
# installing the CPU build of torch==2.13.0 before anything else so that no multi-GB CUDA build is pulled.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup run test lint bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: setup
	$(BIN)/tightfit run

test: setup
	$(BIN)/ruff check .
	$(BIN)/pytest -q

bench: setup
	$(BIN)/python bench/train_throughput.py

clean:
	rm -rf $(VENV) runs

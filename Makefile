# One-command entry points. Each target creates .venv and installs into it on first use.
# torch is installed first and pinned: on CPU machines `torch==2.13.0` is a CPU build; letting pip
# choose would pull a multi-GB CUDA build. GPU users: see README ("Installing on GPUs").
PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
BIN := $(VENV)/bin

.PHONY: setup demo test lint clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH)"
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $@

setup: $(BIN)/.installed

demo: setup
	$(BIN)/ropebench demo

test: setup
	$(BIN)/python -m pytest -q -ra

lint: setup
	$(BIN)/ruff check ropebench tests bench

clean:
	rm -rf $(VENV) .pytest_cache

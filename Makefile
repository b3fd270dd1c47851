# The verbs people, CI and the Docker image share. Every target that needs Python depends on setup,
# so a fresh clone needs nothing but `make demo` and `make test`. `make help` lists them.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CLI := $(BIN)/tweet-classifier
CONFIG ?= configs/airline.yaml
MODEL ?= models/airline
CONFIG_NAME = $(notdir $(basename $(CONFIG)))

# Offline mirrors beside the checkout, unless the caller points elsewhere. Without them (a fresh clone on a
# machine with internet) data goes to data/ and models to the default Hugging Face cache, online:
# `tweet-classifier fetch` (run by `make demo`) downloads what the config needs.
SHARED ?= $(abspath ..)/shared
ifneq ($(wildcard $(SHARED)/datasets),)
export DATA_DIR ?= $(SHARED)/datasets
export HF_HUB_CACHE ?= $(SHARED)/hf-hub
export HF_HUB_OFFLINE ?= 1
else
export DATA_DIR ?= $(abspath data)
endif
export TOKENIZERS_PARALLELISM ?= false

PYTEST := $(BIN)/python -m pytest
COV := --cov --cov-report=term-missing:skip-covered --cov-report=xml

.PHONY: help setup lock fetch demo test test-slow test-load test-browser test-security screenshot lint format data baseline ablation train \
	train-resume evaluate train-speed export bench bench-smoke api-latency results push deploy-space retrain clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | expand -t 16

setup: $(STAMP)  ## create .venv and install the locked requirements with their hashes (once; again when they change)

# The locks (`make lock`) pin every package with its sha256: requirements-dev.lock is the runtime, dev and
# `scale` (Ray, for `predict --engine ray`: CI tests it) requirements. torch is PyTorch's CPU build, which only
# PyTorch's CPU index serves: it comes first and alone (requirements-torch.lock, no dependencies), so that
# one lookup is the only one sent to that index; every other package comes from PyPI.
TORCH_INDEX_URL ?= https://download.pytorch.org/whl/cpu
$(STAMP): requirements-torch.lock requirements-dev.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --require-hashes --no-deps --extra-index-url $(TORCH_INDEX_URL) \
		-r requirements-torch.lock
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements-dev.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

# Where uv finds torch's CPU build: PyTorch's CPU index, for the torch packages only (uv's --torch-backend).
# A machine with the wheel on disk and no route to that index: make lock TORCH_SOURCE="--find-links DIR".
TORCH_SOURCE ?= --torch-backend cpu
LOCK := $(BIN)/uv pip compile --quiet --generate-hashes --python-version 3.11 \
	--python-platform x86_64-manylinux_2_28 --custom-compile-command "make lock" $(TORCH_SOURCE)

lock:  ## regenerate the hash locks from requirements*.txt with uv (from `make setup`; kept versions stay unless a pin moves)
	$(LOCK) requirements.txt --output-file requirements.lock
	$(LOCK) requirements.txt requirements-dev.txt requirements-scale.txt --constraint requirements.lock \
		--output-file requirements-dev.lock
	@# uv writes no hashes with --no-deps: the torch lock is torch's entry of requirements.lock, copied.
	{ echo "# torch alone, copied from requirements.lock by make lock: pip install --no-deps -r this file"; \
		sed -n '/^torch==/,/^    # via/p' requirements.lock; } > requirements-torch.lock

# ---- the two quick-start commands

demo: setup  ## fetch data + base model if missing, train MODEL if it does not exist yet (resuming), export, serve :7860
	test -f $(MODEL)/tweet_classifier.json || $(CLI) fetch --config $(CONFIG)
	test -f $(MODEL)/tweet_classifier.json || $(CLI) train --config $(CONFIG) --output-dir $(MODEL) --resume
	@# Export when missing, or re-export once when an older export or training wrote it (no Rust tokenizer, no
	@# compiled bf16, no canary rows or drift reference in the folder).
	test -f $(MODEL)/onnx/tokenizer.json && test -f $(MODEL)/canary.json \
		&& grep -q '"latency_rounds"' $(MODEL)/onnx/parity.json 2>/dev/null \
		|| $(CLI) export --model $(MODEL) || echo "export failed: serving PyTorch"
	MODEL_ID=$${MODEL_ID:-$(MODEL)} $(BIN)/python app.py

test: setup  ## the default offline suite with coverage (floor in pyproject.toml)
	$(PYTEST) -m "not slow and not load and not browser and not security" $(COV)

fetch: setup  ## download CONFIG's data file (pinned, sha256) and base model when they are missing
	$(CLI) fetch --config $(CONFIG)

# ---- heavier suites (CI runs them too)

test-slow: setup  ## the real base model: smoke training; the staged Space and the Docker image's commands in a fresh venv
	$(PYTEST) -m slow --no-cov

test-load: setup  ## 16 gradio_client users for 60 s against a served model: zero failures, p95 printed
	$(PYTEST) -m load --no-cov -s

test-browser: setup  ## headless Chromium classifies a tweet (needs apt-get install chromium chromium-driver)
	$(PYTEST) -m browser --no-cov

screenshot: setup  ## PNGs of the served MODEL_ID (default: newest under models/) for the README, in docs/screenshots/
	$(BIN)/python scripts/screenshot.py $(if $(MODEL_ID),--model $(MODEL_ID))

test-security: setup  ## file reads, hostile bodies, formulas, uploads, CORS, busy and abandoned requests, on loopback
	$(PYTEST) -m security --no-cov

lint: setup  ## ruff, the layer contract (import-linter), the Dockerfile, the workflows and the shell scripts
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache
	$(BIN)/hadolint Dockerfile
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/actionlint
	$(BIN)/shellcheck .ci/run scripts/*.sh

format: setup  ## ruff format and autofix
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# ---- pipeline stages (CONFIG, MODEL)

data: setup  ## cleaning report and splits for CONFIG
	$(CLI) data --config $(CONFIG) --out outputs/data/$(CONFIG_NAME)

baseline: setup  ## TF-IDF baseline for CONFIG
	$(CLI) baseline --config $(CONFIG) --out outputs/baseline/$(CONFIG_NAME)

ablation: setup  ## cleaning ablation of the baseline for CONFIG (table on stdout, rows in outputs/ablation/)
	$(BIN)/python scripts/ablation.py --config $(CONFIG) --json outputs/ablation/$(CONFIG_NAME).json

train: setup  ## fine-tune on CONFIG into its train.output_dir (model folder + metrics + card)
	$(CLI) train --config $(CONFIG)

train-resume: setup  ## continue an interrupted `make train` from its newest complete checkpoint
	$(CLI) train --config $(CONFIG) --resume

evaluate: setup  ## score MODEL on CONFIG's test split (table on stdout)
	$(CLI) evaluate --model $(MODEL) --config $(CONFIG)

train-speed: setup  ## training samples/s: fp32 padded to 128 vs bf16 + dynamic padding + fused AdamW
	$(BIN)/python scripts/train_speed.py --config $(CONFIG)

export: setup  ## ONNX fp32/int8 files + parity report for MODEL
	$(CLI) export --model $(MODEL)

bench: setup  ## MODEL's backends vs the plain transformers pipeline (table; JSON in outputs/benchmark/)
	$(CLI) benchmark --model $(MODEL) --rounds 5 --json outputs/benchmark/$(notdir $(MODEL)).json

bench-bulk: setup  ## `predict` vs the transformers pipeline on MODEL's test split and a 100k-row file (table)
	$(BIN)/python scripts/bench_bulk.py --model $(MODEL) --repeat-rows 100000 --json outputs/benchmark/bulk-$(notdir $(MODEL)).json

bench-smoke: setup  ## CI: a few steps of real training, export, then the benchmark on 200 test tweets
	rm -rf models/smoke models/smoke.checkpoints
	$(CLI) train --config $(CONFIG) --config configs/smoke.yaml --output-dir models/smoke
	$(CLI) export --model models/smoke
	$(CLI) benchmark --model models/smoke --texts 200 --json outputs/benchmark/smoke.json

api-latency: setup  ## p50/p95 of /predict vs an empty Gradio function and route, raw HTTP and gradio_client
	$(BIN)/python scripts/api_latency.py --model $${MODEL_ID:-$(MODEL)}

results: setup  ## rerun every command whose output the README shows (docs/results/) and splice them in
	scripts/results.sh

# ---- the Hub: these recipes turn the offline default off. The token comes from HF_TOKEN (or
# `hf auth login`), never from a make variable or a flag.

push: setup  ## publish MODEL to REPO_ID in one atomic commit (REVISION: branch, default main)
	HF_HUB_OFFLINE=0 $(CLI) push --model $(MODEL) $(if $(REPO_ID),--repo-id $(REPO_ID)) \
		$(if $(REVISION),--revision $(REVISION))

deploy-space: setup  ## upload the app to SPACE_ID and pin it to MODEL_ID@MODEL_REVISION (a commit SHA)
	HF_HUB_OFFLINE=0 $(CLI) deploy-space $(if $(SPACE_ID),--space-id $(SPACE_ID)) \
		$(if $(MODEL_ID),--model-id $(MODEL_ID)) $(if $(MODEL_REVISION),--model-revision $(MODEL_REVISION))

retrain: setup  ## challenger vs CHAMPION on CONFIG; push to PUSH_REPO only if promoted (exit 0 / 3 / 1)
	env -u HF_HUB_OFFLINE CONFIG="$(CONFIG)" scripts/retrain.sh

clean:  ## remove caches and coverage files
	rm -rf .pytest_cache .ruff_cache .coverage .coverage.* coverage.xml htmlcov

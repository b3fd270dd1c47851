# The verbs people, CI and the Docker image share. Every target that needs Python depends on setup,
# so a fresh clone needs nothing but `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CONFIG ?= configs/airline.yaml

# Offline mirrors beside the checkout, unless the caller points elsewhere.
SHARED ?= $(abspath ..)/shared
export DATA_DIR ?= $(SHARED)/datasets
export HF_HUB_CACHE ?= $(SHARED)/hf-hub
export HF_HUB_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

PYTEST := $(BIN)/python -m pytest
COV := --cov --cov-report=term-missing:skip-covered --cov-report=xml

.PHONY: setup test test-slow test-all lint format data baseline demo test-load test-browser api-latency clean

setup: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt -r requirements-dev.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

test: setup  ## the default offline suite with coverage (floor in pyproject.toml)
	$(PYTEST) -m "not slow and not load and not browser" $(COV)

test-slow: setup  ## tests that load the real base model or train for real
	$(PYTEST) -m slow --no-cov

lint: setup  ## ruff, plus the Dockerfile, the workflows and the shell scripts
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/hadolint Dockerfile
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/actionlint
	$(BIN)/shellcheck .ci/run scripts/*.sh

format: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

data: setup  ## cleaning report and splits for CONFIG
	$(BIN)/tweet-classifier data --config $(CONFIG) --out outputs/data/$(notdir $(basename $(CONFIG)))

baseline: setup  ## TF-IDF baseline for CONFIG
	$(BIN)/tweet-classifier baseline --config $(CONFIG) --out outputs/baseline/$(notdir $(basename $(CONFIG)))

.PHONY: train train-resume evaluate train-speed
train: setup  ## fine-tune the transformer on CONFIG into its train.output_dir (model folder + metrics + card)
	$(BIN)/tweet-classifier train --config $(CONFIG)

train-resume: setup  ## continue an interrupted `make train` from its newest complete checkpoint
	$(BIN)/tweet-classifier train --config $(CONFIG) --resume

evaluate: setup  ## score MODEL on CONFIG's test split (table on stdout)
	$(BIN)/tweet-classifier evaluate --model $(MODEL) --config $(CONFIG)

train-speed: setup  ## training samples/s: fp32 padded to 128 vs bf16 + dynamic padding + fused AdamW
	$(BIN)/python scripts/train_speed.py --config $(CONFIG)

.PHONY: ablation
ablation: setup  ## cleaning ablation of the baseline for CONFIG (table on stdout, rows in outputs/ablation/)
	$(BIN)/python scripts/ablation.py --config $(CONFIG) --json outputs/ablation/$(notdir $(basename $(CONFIG))).json

.PHONY: export bench bench-smoke results
export: setup  ## ONNX fp32/int8 files + parity report for MODEL (default models/airline)
	$(BIN)/tweet-classifier export --model $(MODEL)

bench: setup  ## MODEL's backends vs the plain transformers pipeline (table; JSON in outputs/benchmark/)
	$(BIN)/tweet-classifier benchmark --model $(MODEL) --json outputs/benchmark/$(notdir $(MODEL)).json

bench-smoke: setup  ## CI: a few steps of real training, export, then the benchmark on 200 test tweets
	rm -rf models/smoke models/smoke.checkpoints
	$(BIN)/tweet-classifier train --config $(CONFIG) --config configs/smoke.yaml --output-dir models/smoke
	$(BIN)/tweet-classifier export --model models/smoke
	$(BIN)/tweet-classifier benchmark --model models/smoke --texts 200 --json outputs/benchmark/smoke.json

results: setup  ## rerun every command whose output the README shows (docs/results/) and splice them in
	scripts/results.sh

# Publishing and scheduled retraining need the Hub: these recipes turn the offline default off.
# The token comes from HF_TOKEN (or `hf auth login`), never from a make variable or a flag.
MODEL ?= models/airline
.PHONY: push deploy-space retrain

push: setup  ## publish MODEL to REPO_ID in one atomic commit (REVISION: branch, default main)
	HF_HUB_OFFLINE=0 $(BIN)/tweet-classifier push --model $(MODEL) $(if $(REPO_ID),--repo-id $(REPO_ID)) \
		$(if $(REVISION),--revision $(REVISION))

deploy-space: setup  ## upload the app to SPACE_ID and pin it to MODEL_ID@MODEL_REVISION (a commit SHA)
	HF_HUB_OFFLINE=0 $(BIN)/tweet-classifier deploy-space $(if $(SPACE_ID),--space-id $(SPACE_ID)) \
		$(if $(MODEL_ID),--model-id $(MODEL_ID)) $(if $(MODEL_REVISION),--model-revision $(MODEL_REVISION))

retrain: setup  ## challenger vs CHAMPION on CONFIG; push to PUSH_REPO only if promoted (exit 0/3/1)
	env -u HF_HUB_OFFLINE CONFIG="$(CONFIG)" scripts/retrain.sh

MODEL_DIR ?= models/airline

demo: setup  ## train the default model if there is none yet, then serve the Gradio app on http://127.0.0.1:7860
	test -f $(MODEL_DIR)/tweet_classifier.json || $(BIN)/tweet-classifier train --config $(CONFIG)
	if $(BIN)/python -c "import tweet_classifier.export" 2>/dev/null && ! test -f $(MODEL_DIR)/onnx/model.onnx; then \
		$(BIN)/tweet-classifier export --model $(MODEL_DIR) || echo "export failed; serving the PyTorch weights"; fi
	MODEL_ID=$${MODEL_ID:-$(MODEL_DIR)} $(BIN)/python app.py

test-load: setup  ## 16 gradio_client users for 60 s against the served tiny model: zero failures, p95 printed
	$(PYTEST) -m load --no-cov -s

test-browser: setup  ## headless Chromium classifies a tweet (needs apt-get install chromium chromium-driver)
	$(PYTEST) -m browser --no-cov

api-latency: setup  ## p50/p95 of /predict vs an empty Gradio function and route, raw HTTP and gradio_client
	$(BIN)/python scripts/api_latency.py --model $${MODEL_ID:-$(MODEL_DIR)}

clean:
	rm -rf .pytest_cache .ruff_cache .coverage .coverage.* coverage.xml htmlcov

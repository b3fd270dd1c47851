#!/usr/bin/env bash
# Lay out the offline mirrors that the project reads (DATA_DIR and HF_HUB_CACHE) on a machine that has
# internet, e.g. a GitHub runner: the airline CSV at a pinned commit (checked by sha256) and the base model
# in a Hub cache (`tweet-classifier fetch`, whose pins live in src/tweet_classifier/data/fetch.py), and TweetEval
# hate/offensive in Hub layout.
#   usage: scripts/fetch_shared.sh SHARED_DIR
set -euo pipefail

mkdir -p "${1:?usage: scripts/fetch_shared.sh SHARED_DIR}"
shared="$(cd "$1" && pwd)"
cd "$(dirname "$0")/.."
# The airline CSV (pinned commit, sha256 checked) and the base model: the same pins `make demo` uses.
make setup
DATA_DIR="$shared/datasets" HF_HUB_CACHE="$shared/hf-hub" HF_HUB_OFFLINE=0 \
  .venv/bin/tweet-classifier fetch --config configs/airline.yaml
HF_HUB_OFFLINE=0 .venv/bin/hf download cardiffnlp/tweet_eval --repo-type dataset \
  --include "README.md" "hate/*" "offensive/*" --local-dir "$shared/datasets/tweet_eval"

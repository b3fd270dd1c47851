#!/usr/bin/env bash
# Lay out the offline mirrors that the project reads (DATA_DIR and HF_HUB_CACHE) on a machine that has
# internet, e.g. a GitHub runner: the airline CSV at a pinned commit (checked by sha256), TweetEval
# hate/offensive in Hub layout, and the base model in a Hub cache.
#   usage: scripts/fetch_shared.sh SHARED_DIR
set -euo pipefail

shared="${1:?usage: scripts/fetch_shared.sh SHARED_DIR}"
hf="${HF_CLI:-.venv/bin/hf}"
command -v "$hf" >/dev/null 2>&1 || hf=hf

airline_dir="$shared/datasets/twitter-airline-sentiment"
airline_url="https://raw.githubusercontent.com/eidehua/Real-Time-SciVi/d172fa9b83b3b78ed37b3c39bfc21f9465874ff1/twitter-airline-sentiment/Tweets.csv"
airline_sha256="31aa9f9f90d9da372d1522b463cd0d43128d274f553dcf10b15fb17cdd71df10"

mkdir -p "$airline_dir"
if ! echo "$airline_sha256  $airline_dir/Tweets.csv" | sha256sum --check --status 2>/dev/null; then
  curl --fail --silent --show-error --location --retry 3 --output "$airline_dir/Tweets.csv" "$airline_url"
  echo "$airline_sha256  $airline_dir/Tweets.csv" | sha256sum --check
fi

if ! command -v "$hf" >/dev/null 2>&1; then
  python3 -m pip install --quiet "huggingface_hub==$(sed -n 's/^huggingface_hub==//p' requirements.txt)"
  hf=hf
fi
HF_HUB_OFFLINE=0 "$hf" download cardiffnlp/tweet_eval --repo-type dataset \
  --include "README.md" "hate/*" "offensive/*" --local-dir "$shared/datasets/tweet_eval"
HF_HUB_OFFLINE=0 HF_HUB_CACHE="$shared/hf-hub" "$hf" download sentence-transformers/all-MiniLM-L6-v2 \
  --include "*.json" "vocab.txt" "model.safetensors" "1_Pooling/*"

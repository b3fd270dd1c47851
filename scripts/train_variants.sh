#!/usr/bin/env bash
# Fine-tuning ideas: the default airline run with one change each, plus the default at two more seeds.
# Trains JOBS variants at a time into MODELS_ROOT (default /tmp/variants), then writes
# docs/results/train-variants.json and prints the table (scripts/variants_table.py).
#   JOBS=4 scripts/train_variants.sh            # on one GPU about 5 minutes; on 2 CPU cores about 90
set -euo pipefail
cd "$(dirname "$0")/.."
python="${PYTHON:-.venv/bin/python}"
root="${MODELS_ROOT:-/tmp/variants}"
jobs="${JOBS:-1}"
common=(--config configs/airline.yaml --set tracking.enabled=false --set cleaning.label_noise.policy=off)
variants=(
  "default|"
  "seed1|--set seed=1"
  "seed2|--set seed=2"
  "lr5e-5|--set train.learning_rate=5e-5"
  "lr2e-4|--set train.learning_rate=2e-4"
  "lr3e-4|--set train.learning_rate=3e-4"
  "epochs2|--set train.epochs=2"
  "epochs5|--set train.epochs=5"
  "no_class_weights|--set train.class_weighted_loss=false"
  "no_sample_weights|--set train.sample_weights=false"
  "label_smoothing|--set train.label_smoothing=0.1"
  "freeze_embeddings|--set train.freeze_embeddings=true"
  "max_length_48|--set train.max_length=48"
  "low_conf_drop|--set cleaning.low_confidence.policy=drop"
)
mkdir -p "$root"
running=0
for entry in "${variants[@]}"; do
  name=${entry%%|*}
  read -r -a extra <<<"${entry#*|}"
  "$python" -m tweet_classifier train "${common[@]}" --output-dir "$root/$name" "${extra[@]}" \
    >"$root/$name.log" 2>&1 &
  running=$((running + 1))
  if [ "$running" -ge "$jobs" ]; then wait; running=0; fi
done
wait
"$python" scripts/variants_table.py --collect "$root" --json docs/results/train-variants.json

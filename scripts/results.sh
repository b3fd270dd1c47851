#!/usr/bin/env bash
# Run the commands whose outputs the README shows, save each markdown table under docs/results/,
# then splice them into README.md (scripts/update_readme.py). Steps can be run one at a time:
#   scripts/results.sh [data] [mojibake] [byod] [baseline] [ablation] [train] [seeds] [tweet-eval] [evaluate]
#                      [speed] [bench] [api] [load] [trust] [bulk] [pipeline] [plots] [screenshots]
# With no step, all of them run (about 45 minutes on 2 CPU cores).
set -euo pipefail
cd "$(dirname "$0")/.."

# The same offline defaults as the Makefile.
shared="${SHARED:-$(cd .. && pwd)/shared}"
export DATA_DIR="${DATA_DIR:-$shared/datasets}" HF_HUB_CACHE="${HF_HUB_CACHE:-$shared/hf-hub}"
export HF_HUB_OFFLINE="${HF_HUB_OFFLINE:-1}" TOKENIZERS_PARALLELISM=false

bin=.venv/bin
cli="$bin/tweet-classifier"
out=docs/results
mkdir -p "$out"
steps=("$@")
[ ${#steps[@]} -gt 0 ] || steps=(data mojibake byod baseline ablation train seeds tweet-eval evaluate speed bench api load trust bulk pipeline plots screenshots)

# Trains CONFIG into FOLDER unless that folder already holds a finished model.
train_once() {
  local folder=$1
  shift
  if [ -f "$folder/metrics.json" ]; then
    echo "results: $folder exists, not retraining (delete it to retrain)" >&2
  else
    "$cli" train --output-dir "$folder" "$@"
  fi
}

for step in "${steps[@]}"; do
  echo "results: $step" >&2
  case "$step" in
    data)
      "$cli" data --config configs/airline.yaml --out outputs/data/airline >"$out/cleaning-airline.md" ;;
    mojibake)
      "$bin/python" scripts/lossy_mojibake_table.py >"$out/lossy-mojibake.md" ;;
    byod)
      # The README's "Bring your own data" configs on the small inputs the script writes.
      "$bin/python" scripts/byod_examples.py outputs/byod-data >/dev/null
      for name in reviews sms feedback; do
        DATA_DIR=outputs/byod-data "$cli" data --config "configs/examples/$name.yaml" --out "outputs/data/byod-$name" \
          >"$out/byod-$name.md"
      done ;;
    baseline)
      for name in airline tweet_eval_hate tweet_eval_offensive; do
        "$cli" baseline --config "configs/$name.yaml" --out "outputs/baseline/$name" >"$out/baseline-$name.md"
      done ;;
    ablation)
      "$bin/python" scripts/ablation.py --config configs/airline.yaml --json outputs/ablation/airline.json \
        >"$out/ablation-airline.md" ;;
    train)
      train_once models/airline --config configs/airline.yaml ;;
    seeds)
      for seed in 1 2; do
        train_once "models/airline-seed$seed" --config configs/airline.yaml --set "seed=$seed"
      done ;;
    tweet-eval)
      train_once models/tweet_eval_hate --config configs/tweet_eval_hate.yaml
      train_once models/tweet_eval_offensive --config configs/tweet_eval_offensive.yaml ;;
    evaluate)
      "$cli" evaluate --model models/airline --config configs/airline.yaml >"$out/evaluate-airline.txt" ;;
    speed)
      "$bin/python" scripts/train_speed.py --config configs/airline.yaml >"$out/train-speed.txt" ;;
    bench)
      "$cli" export --model models/airline
      "$cli" benchmark --model models/airline --rounds 5 --json outputs/benchmark/airline.json >"$out/benchmark-airline.md" ;;
    bulk)
      # BULK_ROWS: a smaller repeated file where the pipeline's side of 100k rows takes too long.
      "$bin/python" scripts/bench_bulk.py --model models/airline --repeat-rows "${BULK_ROWS:-100000}" \
        --json outputs/benchmark/bulk-airline.json >"$out/bench-bulk-airline.md" ;;
    api)
      "$bin/python" scripts/api_latency.py --model models/airline >"$out/api-latency.txt" ;;
    load)
      "$bin/python" scripts/load_with_corrections.py --model models/airline >"$out/load-corrections.txt" ;;
    trust)
      # Folders trained before calibration existed get it first (validation split, the folder's run config).
      [ -f models/airline/calibration.json ] || "$cli" calibrate --model models/airline
      "$bin/python" scripts/explain_eval.py --model models/airline >"$out/trust-airline.md" ;;
    pipeline)
      "$bin/python" scripts/pipeline_parity.py --model models/airline >"$out/pipeline-parity.md" ;;
    plots)
      "$bin/python" scripts/live_plots_latency.py --model models/airline --rounds 3 >"$out/live-plots-latency.md" ;;
    screenshots)
      # The impact row's cleaning card reads the ablation from the model folder.
      if [ -f outputs/ablation/airline.json ]; then cp outputs/ablation/airline.json models/airline/ablation.json; fi
      "$bin/python" scripts/screenshot.py --model models/airline --out docs/screenshots >/dev/null ;;
    *)
      echo "results: unknown step '$step'" >&2
      exit 2 ;;
  esac
done

# The fine-tuning table covers whatever model folders exist.
models=()
for folder in models/airline models/airline-seed1 models/airline-seed2 models/tweet_eval_hate models/tweet_eval_offensive; do
  [ -f "$folder/metrics.json" ] && models+=("$folder")
done
if [ ${#models[@]} -gt 0 ]; then
  "$bin/python" scripts/summarize_runs.py "${models[@]}" >"$out/finetune.md"
fi
"$bin/python" scripts/update_readme.py

#!/usr/bin/env bash
# Scheduled retraining (cron, the GitHub `retrain` workflow): train a challenger on the current data and
# promote it only if it beats the champion (tweet-classifier retrain). Thin on purpose: env defaults,
# one CLI call, its exit code passed through.
#
#   CHAMPION=ORG/NAME PUSH_REPO=ORG/NAME scripts/retrain.sh [extra retrain options, e.g. --set train.epochs=2]
#
# Environment:
#   CHAMPION     the current model: a model folder or a Hub id (required)
#   PUSH_REPO    Hub repo a promoted challenger is pushed to (optional; needs HF_TOKEN)
#   FORCE=1      push the challenger even if the gate refuses it (recorded as forced)
#   CONFIG       config file(s), space-separated, later ones win (default configs/airline.yaml)
#   RETRAIN_OUT  folder for the challenger and decision.md/json (default outputs/retrain)
#   SHARED       offline mirrors (datasets/, hf-hub/) when DATA_DIR / HF_HUB_CACHE are unset (default ../shared)
#
# Exit codes: 0 promoted, 3 refused (the champion stays; a normal outcome), 1 failed, 2 bad usage or config.
set -euo pipefail
cd "$(dirname "$0")/.."

champion="${CHAMPION:?set CHAMPION to the current model (a model folder or a Hub id ORG/NAME)}"
shared="${SHARED:-$(cd .. && pwd)/shared}"
export DATA_DIR="${DATA_DIR:-$shared/datasets}"
export HF_HUB_CACHE="${HF_HUB_CACHE:-$shared/hf-hub}"
export TOKENIZERS_PARALLELISM="${TOKENIZERS_PARALLELISM:-false}"
# The Hub is needed to read a Hub champion or to push; a local champion without a push runs offline.
if [[ -z "${HF_HUB_OFFLINE:-}" ]]; then
  if [[ -n "${PUSH_REPO:-}" || ! -e "$champion" ]]; then
    export HF_HUB_OFFLINE=0
  else
    export HF_HUB_OFFLINE=1
  fi
fi

args=(retrain --champion "$champion" --out "${RETRAIN_OUT:-outputs/retrain}")
read -r -a configs <<<"${CONFIG:-configs/airline.yaml}"
for config in "${configs[@]}"; do
  args+=(--config "$config")
done
if [[ -n "${PUSH_REPO:-}" ]]; then
  args+=(--push "$PUSH_REPO")
fi
if [[ "${FORCE:-0}" == "1" ]]; then
  args+=(--force)
fi

# exec: the CLI's exit code (0 / 3 / 1 / 2) is this script's exit code.
exec "${TWEET_CLASSIFIER:-.venv/bin/tweet-classifier}" "${args[@]}" "$@"

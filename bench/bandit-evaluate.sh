#!/bin/bash
# The retrieval policy against static plans on a fresh data directory: a copy of the demo's
# catalog and index build, a Q2E table regenerated without any runtime logs, then N nights.
# REAL_MEMORY=excluded|cross_fitted sets bandit.learner.real_memory; OUT names the JSON written.
set -euo pipefail
cd "$(dirname "$0")/.."
D=$(mktemp -d -t ltrr-bandit-eval-XXXXXX); trap 'rm -rf "$D"' EXIT
cp -r var/catalog var/indexes $D/
printf 'extends: %s/configs/demo.yaml\ndata_dir: %s\n' "$PWD" $D > $D/config.yaml
if [ -n "${REAL_MEMORY:-}" ]; then printf 'bandit:\n  learner:\n    real_memory: %s\n' "$REAL_MEMORY" >> $D/config.yaml; fi
OUT=${OUT:-var/reports/bandit-evaluate.json}
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false MLFLOW_DISABLE_TELEMETRY=true GX_ANALYTICS_ENABLED=false PREFECT_HOME=$PWD/var/prefect HF_HOME=$PWD/var/hf MPLCONFIGDIR=$PWD/var/matplotlib NUMBA_CACHE_DIR=$PWD/var/numba
.venv/bin/ltrr --config $D/config.yaml generate-q2e
.venv/bin/ltrr --config $D/config.yaml bundle build --policy none --ranker none
mkdir -p "$(dirname "$OUT")"
.venv/bin/ltrr --config $D/config.yaml bandit evaluate --nights ${NIGHTS:-4} --queries-per-day ${Q:-300} --json > "$OUT.tmp"
mv "$OUT.tmp" "$OUT"

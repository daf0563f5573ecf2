#!/usr/bin/env bash
# The main job on the shipped default: set up .venv, then score the two shipped reference
# runs (BM25 and all-MiniLM-L6-v2) on the shipped golden set golden_sets/cranfield-50.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh run
gs=golden_sets/cranfield-50
exec .venv/bin/evalsuite evaluate --qrels "$gs/qrels/test.tsv" \
  --run "$gs/runs/bm25.trec" --run "$gs/runs/minilm.trec" \
  -m ndcg@10 -m recall@100 -m map -m mrr@10 -m P@10 "$@"

#!/usr/bin/env bash
# Peak memory of `softprompt predict` generating for 32 rows on a gpt2-small-shaped random model (fp32 weights: 0.5 GB),
# 20-vector prompt + 128 input tokens per row, 8 new tokens, on the CPU. Prints /usr/bin/time's peak RSS.
# Usage: tools/bench/predict_memory.sh [work dir=/tmp/softprompt-predict-memory]   (build first: ./build.sh build)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
work="${1:-/tmp/softprompt-predict-memory}"
ours="src/SoftPrompt.Cli/bin/${CONFIG:-Release}/net10.0/softprompt"
[ -x "$ours" ] || { echo "build first: ./build.sh build" >&2; exit 2; }
[ -f "$work/model/model.safetensors" ] || /usr/bin/python3 tools/bench/make_random_gpt2.py "$work"
/usr/bin/time -v "$ours" predict --model "$work/model" --prompt "t=$work/prompt.safetensors" --data "$work/rows.jsonl" --out "$work/predictions.jsonl" \
  --device cpu --max-new-tokens 8 --batch-size 32 2>&1 | grep -E "rows of|Maximum resident|Elapsed"

#!/usr/bin/env bash
# Greedy generation speed, SoftPrompt against PyTorch in the same run, interleaved (ours, theirs, ours, theirs …):
# gpt2-small shape with random weights, a 20-vector prompt + 128 input tokens per row, on the CPU.
# Usage: tools/bench/decode_compare.sh [rounds=2] [threads=2]   (build first: ./build.sh build)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
rounds="${1:-2}"; threads="${2:-2}"
ours="src/SoftPrompt.Cli/bin/${CONFIG:-Release}/net10.0/softprompt"
[ -x "$ours" ] || { echo "build first: ./build.sh build" >&2; exit 2; }
common=(--shape gpt2-small --seq-len 128 --prompt-length 20)
field() { sed -n "s/.*\"$1\": *\([0-9.e+-]*\).*/\1/p"; }
printf '| batch | new tokens | cache | SoftPrompt tok/s | PyTorch tok/s | ratio | SoftPrompt peak RSS | PyTorch peak RSS |\n|---|---|---|---|---|---|---|---|\n'
for setting in "1 8 cache" "1 128 cache" "16 128 cache" "1 8 no-cache" "1 128 no-cache"; do
  read -r batch tokens cache <<<"$setting"
  flag=(); [ "$cache" = no-cache ] && flag=(--no-cache)
  for r in $(seq "$rounds"); do
    a=$("$ours" bench "${common[@]}" --device cpu --decode --batch-size "$batch" --new-tokens "$tokens" "${flag[@]}" --json)
    b=$(OMP_NUM_THREADS="$threads" /usr/bin/python3 tools/bench/pytorch_decode.py "${common[@]}" --batch-size "$batch" --new-tokens "$tokens" --threads "$threads" "${flag[@]}")
    ta=$(echo "$a" | field tokens_per_second); tb=$(echo "$b" | field tokens_per_second)
    ma=$(echo "$a" | field peak_rss_bytes); mb=$(echo "$b" | field peak_rss_bytes)
    awk -v B="$batch" -v N="$tokens" -v C="$cache" -v ta="$ta" -v tb="$tb" -v ma="$ma" -v mb="$mb" \
      'BEGIN { printf "| %d | %d | %s | %.1f | %.1f | %.2f× | %.0f MiB | %.0f MiB |\n", B, N, C, ta, tb, ta / tb, ma / 1048576, mb / 1048576 }'
  done
done

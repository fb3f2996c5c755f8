#!/usr/bin/env bash
# Data-parallel scaling (issue 16): the same training run (same global batch, same steps) by 1 rank and by N ranks,
# one thread per rank (OMP, OpenBLAS and .NET each 1 thread; mpirun --bind-to core), printing aggregate and per-rank
# tokens/s and the speed-up. Aggregate = all ranks' tokens per second of the run as rank 0 times it (its --json
# tokens_per_second); per rank = aggregate / ranks (shares differ by at most one row). On a shared machine the numbers
# mean little: run it alone.
# Usage: tools/bench/dp_scaling.sh [ranks=2] [steps=30] [batch=8]   (build first: ./build.sh build)
#   MODEL=dir DATA=train.jsonl PROMPT_LENGTH=N DEVICE=cpu|cuda-emulated|cuda replace the demo model and its copy task;
#   OVERSUBSCRIBE=1 lets more ranks than cores start (a smoke run; no figures).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
ranks="${1:-2}"; steps="${2:-30}"; batch="${3:-8}"
bin="src/SoftPrompt.Cli/bin/${CONFIG:-Release}/net10.0"
ours="$bin/softprompt"
[ -x "$ours" ] || { echo "build first: ./build.sh build" >&2; exit 2; }
command -v mpirun >/dev/null || { echo "mpirun not found: install Open MPI with tools/install-deps.sh mpi" >&2; exit 2; }
model="${MODEL:-$bin/Demo/model}"; data="${DATA:-$bin/Demo/data/copy.train.jsonl}"
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 DOTNET_PROCESSOR_COUNT=1
launcher=(mpirun --bind-to core)
[ -n "${OVERSUBSCRIBE:-}" ] && launcher=(mpirun --oversubscribe --bind-to none --mca mpi_yield_when_idle 1)
# Containers run as root, which mpirun refuses unless told both of these.
[ "$(id -u)" = 0 ] && export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
scratch="$(mktemp -d)"; trap 'rm -rf "$scratch"' EXIT
field() { tr -d '\033' | sed -n "s/.*\"$1\": *\([0-9.e+-]*\).*/\1/p" | head -1; }

# Aggregate tokens/s of one run under mpirun -np $1 (1 rank runs as a single process: no MPI is loaded).
run() {
  "${launcher[@]}" -np "$1" "$ours" train --model "$model" --data "$data" --prompt-length "${PROMPT_LENGTH:-4}" --steps "$steps" \
    --batch-size "$batch" --lr 0.1 --device "${DEVICE:-cpu}" --progress off --no-plot --out "$scratch/r$1.safetensors" --json 2>"$scratch/r$1.log" \
    | field tokens_per_second || { cat "$scratch/r$1.log" >&2; exit 1; }
}
one=$(run 1)
many=$(run "$ranks")
[ -n "$one" ] && [ -n "$many" ] || { echo "a run printed no tokens_per_second" >&2; cat "$scratch"/*.log >&2; exit 1; }
echo "global batch $batch, $steps steps, ${DEVICE:-cpu}, $(basename "$(dirname "$model")")/$(basename "$model"), one thread per rank"
printf '| ranks | aggregate tok/s | per rank tok/s | speed-up |\n|---|---|---|---|\n'
awk -v n="$ranks" -v a="$one" -v b="$many" 'BEGIN {
  printf "| 1 | %.0f | %.0f | 1.00× |\n", a, a
  printf "| %d | %.0f | %.0f | %.2f× (%.0f%% of linear) |\n", n, b, b / n, b / a, 100 * b / (a * n) }'

#!/usr/bin/env bash
# One-shot GPU verification from the self-contained bundle (for a GPU machine without the .NET SDK):
#   tools/gpu-check.sh artifacts/softprompt-bundle-linux-x64.tar.xz OUTDIR
# Runs doctor, every Category("Gpu") test, the demo on cuda, `softprompt bench` (fp32 and TF32 GEMMs, ensembles)
# and the BenchmarkDotNet kernel (KernelBenchmarks, AttentionKernelBenchmarks: attention's timings and shapes) and step
# benchmarks in-process.
set -uo pipefail
tarball="$(realpath "$1")"; out="$(realpath -m "${2:-gpu-check}")"
mkdir -p "$out" /tmp/softprompt-gpu && cd /tmp/softprompt-gpu && tar -xJf "$tarball" && cd bundle
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > "$out/nvidia.txt" 2>&1
./softprompt doctor > "$out/doctor.txt" 2>&1
SOFTPROMPT_REQUIRE_GPU=1 timeout "${GPU_TEST_TIMEOUT:-150}" ./SoftPrompt.Tests --progress off --filter "TestCategory=Gpu" --output Detailed > "$out/gpu-tests.txt" 2>&1
echo "gpu tests exit $?" >> "$out/gpu-tests.txt"
timeout 60 ./softprompt demo --device cuda > "$out/demo-cuda.txt" 2>&1
b() { timeout "${BENCH_TIMEOUT:-60}" ./softprompt bench --device cuda --steps 10 --json "$@" >> "$out/bench.jsonl" 2>> "$out/bench.err"; }
b --shape gpt2-small --batch-size 16 --seq-len 256 --prompt-length 100
b --shape gpt2-small --batch-size 16 --seq-len 256 --prompt-length 100 --tf32
b --shape gpt2-medium --batch-size 16 --seq-len 256 --prompt-length 100
b --shape gpt2-medium --batch-size 16 --seq-len 256 --prompt-length 100 --tf32
b --shape gpt2-small --batch-size 16 --seq-len 128 --prompt-length 20 --targets 4
b --shape gpt2-small --batch-size 16 --seq-len 128 --prompt-length 20 --targets 4 --ensemble 5
b --shape gpt2-small --batch-size 2 --seq-len 128 --prompt-length 20 --targets 4 --tf32
b --shape gpt2-small --batch-size 2 --seq-len 128 --prompt-length 20 --targets 4 --tf32 --ensemble 5
b --shape t5-base --batch-size 16 --seq-len 256 --prompt-length 100 --tf32
BENCH_TIMEOUT=120 b --shape llama3.2-1b --batch-size 8 --seq-len 256 --prompt-length 100 --targets 4 --tf32
if [ "${SKIP_BDN:-0}" != 1 ]; then
  timeout "${BDN_TIMEOUT:-420}" ./SoftPrompt.Benchmarks --filter '*KernelBenchmarks*' '*CudaTrainingStep*' '*CudaLlamaTrainingStep*' --inProcess --job short > "$out/bdn.txt" 2>&1
fi
for f in nvidia.txt doctor.txt demo-cuda.txt bench.jsonl bench.err; do echo "== $f"; cat "$out/$f"; done
echo "== bdn"; grep -E "^\|" "$out/bdn.txt" 2>/dev/null | head -60
echo "== gpu-tests.txt (failures and summary)"; grep -E "^failed|total:|succeeded:|failed:|skipped:|exit" "$out/gpu-tests.txt" | head -60

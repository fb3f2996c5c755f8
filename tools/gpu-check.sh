#!/usr/bin/env bash
# One-shot GPU verification from the self-contained bundle (for a GPU machine without the .NET SDK):
#   tools/gpu-check.sh artifacts/softprompt-bundle-linux-x64.tar.xz OUTDIR
# Runs doctor, every Category("Gpu") test, the demo on cuda, `softprompt bench` (fp32 and TF32 GEMMs, ensembles)
# and the BenchmarkDotNet kernel (KernelBenchmarks, AttentionKernelBenchmarks: attention's timings and shapes) and step
# benchmarks in-process, and the PyTorch comparison (tools/bench/step_compare.py; SKIP_PYTORCH=1 skips it).
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
# The PyTorch comparison (tools/bench/pytorch_step.py travels in the bundle with the tests): ours and PyTorch's eager and
# torch.compile steps interleaved, at the README's settings, fp32 / tf32 / bf16; one table.
if [ "${SKIP_PYTORCH:-0}" != 1 ]; then
  timeout "${COMPARE_TIMEOUT:-600}" python3 tools/bench/step_compare.py --device cuda --softprompt ./softprompt --rounds "${COMPARE_ROUNDS:-1}" \
    --python "$(command -v python3)" ${COMPARE_SETTINGS:---setting gpt2-small:16:256:100 --setting gpt2-medium:16:256:100 --setting llama3.2-1b:8:256:100:4 --setting t5-base:16:256:100} \
    --peak-tflops "${PEAK_TFLOPS:-989}" --timeout 120 --json-out "$out/step-compare.json" > "$out/step-compare.md" 2>&1
fi
if [ "${SKIP_BDN:-0}" != 1 ]; then
  timeout "${BDN_TIMEOUT:-420}" ./SoftPrompt.Benchmarks --filter '*KernelBenchmarks*' '*CudaTrainingStep*' '*CudaLlamaTrainingStep*' --inProcess --job short > "$out/bdn.txt" 2>&1
fi
for f in nvidia.txt doctor.txt demo-cuda.txt bench.jsonl bench.err step-compare.md; do echo "== $f"; cat "$out/$f"; done
echo "== bdn"; grep -E "^\|" "$out/bdn.txt" 2>/dev/null | head -60
echo "== gpu-tests.txt (failures and summary)"; grep -E "^failed|total:|succeeded:|failed:|skipped:|exit" "$out/gpu-tests.txt" | head -60

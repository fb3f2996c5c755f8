#!/usr/bin/env bash
# One-shot GPU verification from the self-contained bundle (for a GPU machine without the .NET SDK):
#   tools/gpu-check.sh artifacts/softprompt-bundle-linux-x64.tar.xz OUTDIR
# Runs doctor, every Category("Gpu") test, the demo on cuda, and `softprompt bench` for gpt2-small/medium.
set -uo pipefail
tarball="$(realpath "$1")"; out="$(realpath -m "${2:-gpu-check}")"
mkdir -p "$out" /tmp/softprompt-gpu && cd /tmp/softprompt-gpu && tar -xJf "$tarball" && cd bundle
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > "$out/nvidia.txt" 2>&1
./softprompt doctor > "$out/doctor.txt" 2>&1
SOFTPROMPT_REQUIRE_GPU=1 timeout "${GPU_TEST_TIMEOUT:-240}" ./SoftPrompt.Tests --progress off --filter "TestCategory=Gpu" --output Detailed > "$out/gpu-tests.txt" 2>&1
echo "gpu tests exit $?" >> "$out/gpu-tests.txt"
timeout 120 ./softprompt demo --device cuda > "$out/demo-cuda.txt" 2>&1
for shape in gpt2-small gpt2-medium; do
  timeout 120 ./softprompt bench --shape "$shape" --batch-size 16 --seq-len 256 --prompt-length 100 --device cuda --steps 10 --json >> "$out/bench.jsonl" 2>> "$out/bench.err"
done
for f in nvidia.txt doctor.txt demo-cuda.txt bench.jsonl bench.err; do echo "== $f"; cat "$out/$f"; done
echo "== gpu-tests.txt (failures and summary)"; grep -E "^failed|Throughput|TFLOP|total:|succeeded:|failed:|skipped:|exit" "$out/gpu-tests.txt" | head -60

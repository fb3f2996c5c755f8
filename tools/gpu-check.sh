#!/usr/bin/env bash
# One-shot GPU verification from the self-contained bundle (for a GPU machine without the .NET SDK):
#   tools/gpu-check.sh artifacts/softprompt-bundle-linux-x64.tar.xz OUTDIR
# A lent GPU comes for minutes, so the steps run in order of value and each starts only if its time limit still fits
# before the deadline (GPU_CHECK_SECONDS, default 540; GPU_CHECK_SKIP="NAME …" leaves steps out): doctor; the LM head's GEMM
# shapes through cuBLAS (tools/bench/head_gemm_shapes.py: vocabulary padded or not, row chunks); every Category("Gpu") test; the demo on cuda (fp32 and
# bf16); `bench --profile` (device time per kernel and GEMM shape of one step: gpt2-small and llama3.2-1b, bf16); the PyTorch comparison (tools/bench/step_compare.py: ours, PyTorch eager and torch.compile interleaved, one
# table; COMPARE_PRECISIONS, COMPARE_SETTINGS, COMPARE_EXTRA_SETTINGS, COMPARE_RUN_TIMEOUT per run: torch.compile of t5-base took over 90 s); `softprompt bench` at further shapes; the
# BenchmarkDotNet kernel benchmarks (per-kernel times). What was skipped for time is printed as such.
set -uo pipefail
tarball="$(realpath "$1")"; out="$(realpath -m "${2:-gpu-check}")"
deadline=$((SECONDS + ${GPU_CHECK_SECONDS:-540}))
# step LIMIT NAME COMMAND...: runs COMMAND under `timeout LIMIT` if it can finish before the deadline.
step() {
  local limit=$1 name=$2; shift 2
  if [ $((SECONDS + limit)) -gt "$deadline" ]; then echo "skipped for time: $name" | tee -a "$out/skipped.txt"; return 0; fi
  case " ${GPU_CHECK_SKIP:-} " in *" $name "*) echo "skipped by GPU_CHECK_SKIP: $name" | tee -a "$out/skipped.txt"; return 0 ;; esac
  local start=$SECONDS; timeout "$limit" "$@"; local rc=$?
  echo "$name: exit $rc after $((SECONDS - start)) s" >> "$out/steps.txt"
}
mkdir -p "$out" /tmp/softprompt-gpu && cd /tmp/softprompt-gpu && tar -xJf "$tarball" && cd bundle
# cuBLAS and NCCL may live in a toolkit or in Python's nvidia wheels outside the loader's path.
libdirs=$(find /usr/local /opt /usr/lib -xdev \( -name 'libcublas.so.1[0-9]' -o -name 'libnccl.so.2' \) -printf '%h\n' 2>/dev/null | sort -u | paste -sd:)
export LD_LIBRARY_PATH="${libdirs}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
echo "library dirs: $libdirs" > "$out/env.txt"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm --format=csv > "$out/nvidia.txt" 2>&1
python3 -c 'import torch; print("torch", torch.__version__, torch.cuda.get_device_name(0))' >> "$out/env.txt" 2>&1
step 30 doctor ./softprompt doctor > "$out/doctor.txt" 2>&1
step 40 head-gemms python3 tools/bench/head_gemm_shapes.py > "$out/head-gemms.txt" 2>&1
SOFTPROMPT_REQUIRE_GPU=1 step "${GPU_TEST_TIMEOUT:-170}" gpu-tests ./SoftPrompt.Tests --progress off --filter "TestCategory=Gpu" --output Detailed > "$out/gpu-tests.txt" 2>&1
step 45 demo-cuda ./softprompt demo --device cuda > "$out/demo-cuda.txt" 2>&1
step 45 demo-cuda-bf16 ./softprompt demo --device cuda --precision bf16 > "$out/demo-cuda-bf16.txt" 2>&1
profile() {  # profile LIMIT NAME BENCH-ARGS...: where a step's device time goes, as a table
  local limit=$1 name=$2; shift 2
  step "$limit" "$name" ./softprompt bench --device cuda --steps 3 --warmup 2 --profile "$@" > "$out/$name.txt" 2>&1
}
profile "${PROFILE_TIMEOUT:-60}" profile-gpt2-small --shape gpt2-small --batch-size 16 --seq-len 256 --prompt-length 100 --precision bf16
profile "${PROFILE_LLAMA_TIMEOUT:-90}" profile-llama3.2-1b --shape llama3.2-1b --batch-size 8 --seq-len 256 --prompt-length 100 --targets 4 --precision bf16
compare() {  # compare LIMIT NAME SETTINGS...: the PyTorch comparison table for these settings
  local limit=$1 name=$2; shift 2
  step "$limit" "$name" python3 tools/bench/step_compare.py --device cuda --softprompt ./softprompt --rounds "${COMPARE_ROUNDS:-1}" \
    --precisions "${COMPARE_PRECISIONS:-bf16}" --python "$(command -v python3)" "$@" --peak-tflops "${PEAK_TFLOPS:-989}" \
    --timeout "${COMPARE_RUN_TIMEOUT:-150}" --json-out "$out/$name.json" > "$out/$name.md" 2>&1
}
settings=(); for s in ${COMPARE_SETTINGS:-gpt2-small:16:256:100 gpt2-medium:16:256:100 llama3.2-1b:8:256:100:4}; do settings+=(--setting "$s"); done
compare "${COMPARE_TIMEOUT:-270}" step-compare "${settings[@]}"
extra=(); for s in ${COMPARE_EXTRA_SETTINGS:-gpt2-large:16:256:100 t5-base:16:256:100 t5-xl:16:256:100 llama3-8b:8:512:100:4}; do extra+=(--setting "$s"); done
compare "${COMPARE_EXTRA_TIMEOUT:-300}" step-compare-extra "${extra[@]}" --no-compile
b() { step "${BENCH_TIMEOUT:-60}" "bench $*" ./softprompt bench --device cuda --steps 10 --json "$@" >> "$out/bench.jsonl" 2>> "$out/bench.err"; }
b --shape gpt2-small --batch-size 16 --seq-len 256 --prompt-length 100 --precision tf32
b --shape gpt2-small --batch-size 16 --seq-len 128 --prompt-length 20 --targets 4 --precision bf16 --ensemble 5
BENCH_TIMEOUT=120 b --shape llama3-8b --batch-size 8 --seq-len 512 --prompt-length 100 --targets 4 --precision bf16
step "${BDN_TIMEOUT:-200}" bdn ./SoftPrompt.Benchmarks --filter '*KernelBenchmarks*' --inProcess --job short > "$out/bdn.txt" 2>&1
for f in env.txt nvidia.txt doctor.txt steps.txt skipped.txt demo-cuda.txt demo-cuda-bf16.txt head-gemms.txt bench.jsonl bench.err step-compare.md step-compare-extra.md; do
  [ -f "$out/$f" ] && { echo "== $f"; tail -c 2500 "$out/$f"; }
done
for f in profile-gpt2-small.txt profile-llama3.2-1b.txt; do
  [ -f "$out/$f" ] && { echo "== $f"; head -c 8000 "$out/$f"; }
done
echo "== bdn"; grep -E "^\|" "$out/bdn.txt" 2>/dev/null | head -40
echo "== gpu-tests.txt (summary, then the failed tests; their messages are in the file)"
grep -E "^  (total|succeeded|failed|skipped|duration):" "$out/gpu-tests.txt"; grep -E "^failed " "$out/gpu-tests.txt" | cut -c1-160 | head -60

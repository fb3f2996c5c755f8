#!/usr/bin/env bash
# SoftPrompt build entry point. Verbs: restore | build | kernels | test | test-fast | bench | demo | bundle | fuzz
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$ROOT"
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1
CONFIG="${CONFIG:-Release}"

verb="${1:-build}"; shift || true

restore() { dotnet restore Engine.sln; }

kernels() {
  if [ -x kernels/build-kernels.sh ]; then kernels/build-kernels.sh "$@"; fi
}

build() {
  kernels
  dotnet build Engine.sln -c "$CONFIG" --nologo -clp:ErrorsOnly "$@"
}

# Runs the NUnit suite (Microsoft.Testing.Platform executable) and ends with "N passed, N failed".
test_() {
  tools/install-deps.sh blas || echo "warning: OpenBLAS could not be installed; CPU GEMMs use the managed fallback" >&2
  tools/install-deps.sh mpi || echo "warning: Open MPI could not be installed; the mpirun tests will be skipped" >&2
  build
  local log; log="$(mktemp)"
  local exe="tests/SoftPrompt.Tests/bin/$CONFIG/net10.0/SoftPrompt.Tests"
  # Emulated kernels run under AddressSanitizer when its build exists: the test host gets libasan preloaded and
  # EmulatedDevice then picks libsoftprompt_emu_asan.so. detect_leaks=0: the .NET runtime is not leak-clean.
  if [ -z "${TEST_PRELOAD:-}" ] && [ -f kernels/build/emu/libsoftprompt_emu_asan.so ]; then
    local asan; asan="$(g++ -print-file-name=libasan.so 2>/dev/null || true)"
    if [ -f "$asan" ]; then TEST_PRELOAD="$asan"; else echo "warning: libasan not found; emulated kernels run without AddressSanitizer" >&2; fi
  fi
  set +e
  run_tests "$exe" "$log" "$@"
  local rc=$?
  if [ "${TEST_REVERSE_ORDER:-0}" = 1 ]; then
    # The emulator runs a block's threads from one barrier to the next in rank order; swept in reverse, a shared-memory
    # hand-off that lacks its barrier reads stale data. The kernel and emulator tests run once more that way.
    echo "--- kernel and emulator tests again, each block's threads swept in reverse order (SOFTPROMPT_EMU_ORDER=reverse) ---"
    SOFTPROMPT_EMU_ORDER=reverse run_tests "$exe" "$log" --filter "FullyQualifiedName~SoftPrompt.Tests.Kernels|FullyQualifiedName~SoftPrompt.Tests.Emulation"
    rc=$((rc | $?))
  fi
  set -e
  # The runner colours its summary when it believes it is in CI (CI=true): strip ANSI escapes before reading it.
  sed -i 's/\x1b\[[0-9;]*m//g' "$log"
  local runs total failed passed skipped
  runs=$(grep -c '^ *total: *[0-9]' "$log")
  total=$(sed -n 's/^ *total: *\([0-9]*\).*/\1/p' "$log" | awk '{ s += $1 } END { print s }')
  failed=$(sed -n 's/^ *failed: *\([0-9]*\).*/\1/p' "$log" | awk '{ s += $1 } END { print s }')
  passed=$(sed -n 's/^ *succeeded: *\([0-9]*\).*/\1/p' "$log" | awk '{ s += $1 } END { print s }')
  skipped=$(sed -n 's/^ *skipped: *\([0-9]*\).*/\1/p' "$log" | awk '{ s += $1 } END { print s }')
  # The failures again, just above the closing line: a CI that keeps only the tail of a long log still shows which failed.
  if [ "${failed:-0}" != 0 ]; then
    echo "--- failed tests (first lines of each) ---"
    awk '/^ *failed [^:]/ { left = 10 } left > 0 { print; left-- }' "$log" | head -200
  fi
  rm -f "$log"
  local expected_runs=1; [ "${TEST_REVERSE_ORDER:-0}" = 1 ] && expected_runs=2
  if [ -z "$total" ] || [ "$runs" != "$expected_runs" ]; then echo "0 passed, 1 failed"; echo "a test run produced no summary (exit $rc)" >&2; return 1; fi
  [ "$runs" -gt 1 ] && echo "(summed over $runs runs)"
  echo "${passed:-0} passed, ${failed:-0} failed, ${skipped:-0} skipped"
  return "$rc"
}

# run_tests EXE LOG ARGS...: one run of the test host (libasan preloaded when TEST_PRELOAD is set), its output appended to LOG.
run_tests() {
  local exe="$1" log="$2"; shift 2
  ${TEST_PRELOAD:+env LD_PRELOAD="$TEST_PRELOAD" ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=0}"} \
    "$exe" --progress off --show-test-results failed "$@" 2>&1 | tee -a "$log"
  return "${PIPESTATUS[0]}"
}

bench() { dotnet run -c Release --project benchmarks/SoftPrompt.Benchmarks -- "$@"; }

demo() {
  build
  "src/SoftPrompt.Cli/bin/$CONFIG/net10.0/softprompt" demo "$@"
}

bundle() {
  kernels
  local out="artifacts/bundle"
  rm -rf "$out"; mkdir -p "$out"
  dotnet publish src/SoftPrompt.Cli -c Release -r linux-x64 --self-contained true -o "$out" --nologo -clp:ErrorsOnly
  dotnet publish tests/SoftPrompt.Tests -c Release -r linux-x64 --self-contained true -o "$out" --nologo -clp:ErrorsOnly
  dotnet publish benchmarks/SoftPrompt.Benchmarks -c Release -r linux-x64 --self-contained true -o "$out" --nologo -clp:ErrorsOnly
  tar -C artifacts -cJf artifacts/softprompt-bundle-linux-x64.tar.xz bundle
  du -sh "$out" artifacts/softprompt-bundle-linux-x64.tar.xz
}

# Coverage-guided fuzzing (SharpFuzz + afl++): ./build.sh fuzz [TARGET|all] [SECONDS per target, default 60].
# Builds tests/SoftPrompt.Fuzz, instruments a copy of SoftPrompt.dll, runs afl-fuzz on each target for the bounded time
# from tests/SoftPrompt.Fuzz/corpus/TARGET, then keeps crashes (corpus/TARGET/crashes/), hangs (…/hangs/) and up to 20
# small new inputs (…/found/), prints executions and crashes per target and appends them to
# tests/SoftPrompt.Fuzz/results.tsv. Exit 1 when any target crashed.
fuzz() {
  local only="${1:-all}" seconds="${2:-60}"
  local src="tests/SoftPrompt.Fuzz" bin="artifacts/fuzz/bin" tools="artifacts/fuzz/tools" work="artifacts/fuzz/work"
  command -v afl-fuzz >/dev/null || tools/install-deps.sh afl
  [ -x "$tools/sharpfuzz" ] || dotnet tool install SharpFuzz.CommandLine --version 2.3.0 --tool-path "$tools" >/dev/null
  dotnet build "$src" -c Release --nologo -clp:ErrorsOnly
  rm -rf "$bin"; mkdir -p "$bin"; cp -r "$src/bin/Release/net10.0/." "$bin/"
  "$tools/sharpfuzz" "$bin/SoftPrompt.dll" >/dev/null
  local targets; targets=$( (dotnet "$bin/SoftPrompt.Fuzz.dll" 2>&1 || true) | sed -n 's/.*targets: //p' | tr -d ',')
  [ "$only" = all ] || { echo " $targets " | grep -q " $only " || { echo "fuzz: unknown target '$only' (targets: $targets)" >&2; return 2; }; targets="$only"; }
  local any=0 t
  printf '%-20s %8s %12s %8s %6s %8s\n' target seconds executions crashes hangs corpus
  for t in $targets; do
    local in="$work/$t/in" out="$work/$t/out" corpus="$src/corpus/$t"
    rm -rf "$work/$t"; mkdir -p "$in" "$out"
    find "$corpus" -maxdepth 1 -type f -exec cp {} "$in/" \;
    [ -d "$corpus/found" ] && cp "$corpus/found/"* "$in/" 2>/dev/null || true
    # afl++ drives SharpFuzz's in-process fork server; dotnet itself carries no afl instrumentation (SKIP_BIN_CHECK).
    # The GC heap limit turns an attacker-sized allocation (over 1 GiB) into OutOfMemoryException, i.e. a crash.
    AFL_SKIP_BIN_CHECK=1 AFL_NO_UI=1 AFL_SKIP_CPUFREQ=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 AFL_NO_AFFINITY=1 \
      AFL_FORKSRV_INIT_TMOUT=60000 AFL_SKIP_CRASHES=1 DOTNET_GCHeapHardLimit=40000000 FUZZ_WORKDIR=/dev/shm \
      timeout $((seconds + 120)) afl-fuzz -i "$in" -o "$out" -V "$seconds" -t 5000 -m none -- \
      dotnet "$bin/SoftPrompt.Fuzz.dll" "$t" >"$work/$t/afl.log" 2>&1 || echo "fuzz: afl-fuzz on $t exited $? (log: $work/$t/afl.log)" >&2
    local stats="$out/default/fuzzer_stats" execs=0 crashes=0 hangs=0
    if [ -f "$stats" ]; then
      execs=$(sed -n 's/^execs_done *: *//p' "$stats")
      crashes=$(sed -n 's/^\(saved\|unique\)_crashes *: *//p' "$stats")
      hangs=$(sed -n 's/^\(saved\|unique\)_hangs *: *//p' "$stats")
    fi
    local kind f
    for kind in crashes hangs; do
      for f in "$out/default/$kind"/id:*; do
        [ -f "$f" ] || continue
        mkdir -p "$corpus/$kind"; cp "$f" "$corpus/$kind/$(sha1sum "$f" | cut -c1-16)"
      done
    done
    local kept=0
    for f in $(ls -S -r "$out/default/queue"/id:* 2>/dev/null | grep -v orig || true); do
      [ "$kept" -lt 20 ] && [ "$(stat -c %s "$f")" -le 2048 ] || continue
      mkdir -p "$corpus/found"; cp "$f" "$corpus/found/$(sha1sum "$f" | cut -c1-16)"; kept=$((kept + 1))
    done
    printf '%-20s %8s %12s %8s %6s %8s\n' "$t" "$seconds" "${execs:-0}" "${crashes:-0}" "${hangs:-0}" "$(find "$corpus" -type f | wc -l)"
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$(date -u +%FT%TZ)" "$t" "$seconds" "${execs:-0}" "${crashes:-0}" "${hangs:-0}" >>"$src/results.tsv"
    [ "${crashes:-0}" -eq 0 ] && [ "${hangs:-0}" -eq 0 ] || any=1
  done
  return "$any"
}

case "$verb" in
  restore) restore "$@" ;;
  build) build "$@" ;;
  kernels) kernels "$@" ;;
  test) TEST_REVERSE_ORDER=1 test_ "$@" ;;
  # Everything but [Category("Slow")] (the demo runs, CLI runs on the emulator, the big parity runs): about a minute.
  test-fast) test_ --filter "TestCategory!=Slow" "$@" ;;
  bench) bench "$@" ;;
  demo) demo "$@" ;;
  bundle) bundle "$@" ;;
  fuzz) fuzz "$@" ;;
  *) echo "usage: ./build.sh restore|build|kernels|test|test-fast|bench|demo|bundle|fuzz" >&2; exit 2 ;;
esac

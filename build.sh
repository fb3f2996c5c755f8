#!/usr/bin/env bash
# SoftPrompt build entry point. Verbs: restore | build | kernels | test | test-fast | bench | demo | bundle
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
  ${TEST_PRELOAD:+env LD_PRELOAD="$TEST_PRELOAD" ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=0}"} \
    "$exe" --progress off --show-test-results failed "$@" 2>&1 | tee "$log"
  local rc=${PIPESTATUS[0]}
  set -e
  # The runner colours its summary when it believes it is in CI (CI=true): strip ANSI escapes before reading it.
  sed -i 's/\x1b\[[0-9;]*m//g' "$log"
  local total failed passed skipped
  total=$(sed -n 's/^ *total: *\([0-9]*\).*/\1/p' "$log" | tail -1)
  failed=$(sed -n 's/^ *failed: *\([0-9]*\).*/\1/p' "$log" | tail -1)
  passed=$(sed -n 's/^ *succeeded: *\([0-9]*\).*/\1/p' "$log" | tail -1)
  skipped=$(sed -n 's/^ *skipped: *\([0-9]*\).*/\1/p' "$log" | tail -1)
  rm -f "$log"
  if [ -z "$total" ]; then echo "0 passed, 1 failed"; echo "test runner produced no summary (exit $rc)" >&2; return 1; fi
  echo "${passed:-0} passed, ${failed:-0} failed, ${skipped:-0} skipped"
  return "$rc"
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

case "$verb" in
  restore) restore "$@" ;;
  build) build "$@" ;;
  kernels) kernels "$@" ;;
  test) test_ "$@" ;;
  # Everything but [Category("Slow")] (the demo runs, CLI runs on the emulator, the big parity runs): about a minute.
  test-fast) test_ --filter "TestCategory!=Slow" "$@" ;;
  bench) bench "$@" ;;
  demo) demo "$@" ;;
  bundle) bundle "$@" ;;
  *) echo "usage: ./build.sh restore|build|kernels|test|test-fast|bench|demo|bundle" >&2; exit 2 ;;
esac

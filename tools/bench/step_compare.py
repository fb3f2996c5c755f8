#!/usr/bin/python3
"""Our prompt-tuning step against PyTorch's, in one run, interleaved (ours, theirs, ours, theirs …), one table.

For every setting (shape, batch, tokens, prompt length, targets) and precision, each round runs `softprompt bench` once
and tools/bench/pytorch_step.py once per mode (eager, and torch.compile where the installed torch has it), so both see
the same machine state. Reports medians over the rounds; every single run goes to --json-out.
FLOPs are ours (`softprompt bench` counts them; the PyTorch step does the same work), so MFU = our TFLOP/s ÷ --peak-tflops.

Usage (build first; on a GPU machine from the bundle: --softprompt ./softprompt):
  /usr/bin/python3 tools/bench/step_compare.py [--device cpu|cuda] [--rounds 2] [--precisions fp32,tf32,bf16]
      [--setting gpt2-small:16:256:100[:targets]] … [--no-compile] [--peak-tflops 989] [--threads 1] [--json-out FILE]
Needs no torch itself: it only starts the two benchmarks.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
STEP = os.path.join(ROOT, "tools", "bench", "pytorch_step.py")

# The README's benchmark settings on a GPU; on this 2-core CPU the gpt2-small settings of the CPU comparison.
GPU_SETTINGS = ["gpt2-small:16:256:100", "gpt2-medium:16:256:100", "gpt2-large:16:256:100", "llama3.2-1b:8:256:100:4",
                "llama3-8b:8:512:100:4", "t5-base:16:256:100", "t5-xl:16:256:100"]
CPU_SETTINGS = ["gpt2-small:1:128:20", "gpt2-small:4:128:20"]
OUR_PRECISION_FLAGS = {"fp32": ["--precision", "fp32"], "tf32": ["--precision", "tf32"], "bf16": ["--precision", "bf16"]}


def parse_setting(text):
    parts = text.split(":")
    if len(parts) not in (4, 5):
        sys.exit(f"step_compare: setting '{text}' is not shape:batch:seq-len:prompt-length[:targets]")
    shape, numbers = parts[0], [int(p) for p in parts[1:]]
    return {"shape": shape, "batch_size": numbers[0], "seq_len": numbers[1], "prompt_length": numbers[2],
            "targets": numbers[3] if len(numbers) == 4 else None}


def setting_args(s):
    args = ["--shape", s["shape"], "--batch-size", str(s["batch_size"]), "--seq-len", str(s["seq_len"]),
            "--prompt-length", str(s["prompt_length"])]
    return args + (["--targets", str(s["targets"])] if s["targets"] is not None else [])


def run_json(command, timeout):
    """The last JSON line a benchmark printed, or an error text (the comparison goes on without that cell)."""
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout} s"}
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        tail = (done.stderr.strip().splitlines() or done.stdout.strip().splitlines() or ["no output"])[-1]
        return {"error": f"exit {done.returncode}: {tail[:200]}"}
    return json.loads(lines[-1])


def median(runs, key):
    values = [r[key] for r in runs if key in r]
    return statistics.median(values) if values else None


def mib(value):
    return None if value is None else value / 2**20


def cell(value, fmt):
    return "–" if value is None else fmt.format(value)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--softprompt", default=os.path.join(ROOT, "src", "SoftPrompt.Cli", "bin", "Release", "net10.0", "softprompt"))
    p.add_argument("--python", default="/usr/bin/python3")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--precisions", help="comma-separated fp32,tf32,bf16 (default: fp32 on cpu, all three on cuda)")
    p.add_argument("--setting", action="append", help="shape:batch:seq-len:prompt-length[:targets], repeatable")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--no-compile", action="store_true", help="skip torch.compile runs")
    p.add_argument("--threads", type=int, default=1,
                   help="PyTorch intra-op threads on the CPU (default 1: on 2 cores, 1 torch thread with OpenBLAS using both is its fastest)")
    p.add_argument("--peak-tflops", type=float, help="dense peak of the precision MFU is quoted against (H100/H200 bf16: 989)")
    p.add_argument("--timeout", type=int, default=900, help="seconds per benchmark run")
    p.add_argument("--json-out")
    a = p.parse_args()
    precisions = (a.precisions or ("fp32" if a.device == "cpu" else "fp32,tf32,bf16")).split(",")
    settings = [parse_setting(s) for s in (a.setting or (CPU_SETTINGS if a.device == "cpu" else GPU_SETTINGS))]
    timing = ["--steps", str(a.steps), "--warmup", str(a.warmup)]
    theirs_modes = [False] + ([] if a.no_compile else [True])
    runs = []  # every run: setting, precision, who, compiled, result
    for s in settings:
        for _ in range(a.rounds):
            for precision in precisions:
                ours = run_json([a.softprompt, "bench", *setting_args(s), "--device", a.device, *timing, "--json",
                                 *OUR_PRECISION_FLAGS[precision]], a.timeout)
                runs.append({"setting": s, "precision": precision, "who": "softprompt", "compiled": False, "result": ours})
                for compiled in theirs_modes:
                    command = [a.python, STEP, *setting_args(s), "--device", a.device, "--precision", precision, *timing]
                    if compiled:
                        command.append("--compile")
                    if a.device == "cpu":
                        command += ["--threads", str(a.threads)]
                    runs.append({"setting": s, "precision": precision, "who": "pytorch", "compiled": compiled,
                                 "result": run_json(command, a.timeout)})
    if a.json_out:
        with open(a.json_out, "w") as f:
            json.dump(runs, f, indent=1)
    print(f"| setting | precision | SoftPrompt ms/step | PyTorch eager ms/step | PyTorch compiled ms/step | eager ÷ ours | compiled ÷ ours "
          f"| SoftPrompt tokens/s | SoftPrompt TFLOP/s | MFU | SoftPrompt memory | PyTorch eager memory |  ({a.rounds} rounds, medians)")
    print("|" + "---|" * 12)
    errors = []
    for s in settings:
        label = f"{s['shape']} {s['batch_size']}×({s['prompt_length']}+{s['seq_len']})" + (f" t{s['targets']}" if s["targets"] else "")
        for precision in precisions:
            def ok(who, compiled):
                mine = [r for r in runs if r["setting"] is s and r["precision"] == precision and r["who"] == who and r["compiled"] == compiled]
                errors.extend(f"{label} {precision} {who}{' compiled' if compiled else ''}: {r['result']['error']}" for r in mine if "error" in r["result"])
                return [r["result"] for r in mine if "error" not in r["result"]]
            ours, eager, compiled = ok("softprompt", False), ok("pytorch", False), ok("pytorch", True)
            ms, ms_eager, ms_compiled = median(ours, "ms_per_step"), median(eager, "ms_per_step"), median(compiled, "ms_per_step")
            tflops = median(ours, "tflops")
            mfu = tflops / a.peak_tflops if tflops is not None and a.peak_tflops else None
            ratio = lambda theirs: theirs / ms if theirs is not None and ms else None  # noqa: E731
            print(f"| {label} | {precision} | {cell(ms, '{:.1f}')} | {cell(ms_eager, '{:.1f}')} | {cell(ms_compiled, '{:.1f}')} "
                  f"| {cell(ratio(ms_eager), '{:.2f}×')} | {cell(ratio(ms_compiled), '{:.2f}×')} | {cell(median(ours, 'tokens_per_second'), '{:.0f}')} "
                  f"| {cell(tflops, '{:.2f}')} | {cell(mfu, '{:.0%}')} | {cell(mib(median(ours, 'memory_bytes')), '{:.0f} MiB')} "
                  f"| {cell(mib(median(eager, 'peak_memory_bytes')), '{:.0f} MiB')} |")
    for e in dict.fromkeys(errors):  # once per cell, not once per round
        print(f"not measured: {e}")


if __name__ == "__main__":
    main()

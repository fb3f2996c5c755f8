#!/usr/bin/env python3
"""Times the LM-head GEMMs of a bf16 prompt-tuning step through cublasGemmEx, called as the engine calls it
(CudaDevice.GemmEx: bf16 A and B, fp32 compute, row-major mapped onto column-major), for the vocabulary as it is
(GPT-2: 50257), padded to a multiple of 8 (the logit row stride), 64 and 128, and for several row-chunk sizes.
Why: on an H200 the head's GEMMs ran at 77–125 TFLOP/s while the block GEMMs of the same step ran at 270–610
(benchmarks/results/2026-12-04-h200-second/profile-gpt2-small.txt); this says which shape change pays before the engine
changes. Needs a GPU, PyTorch (allocation and CUDA events only) and libcublas. Prints one line per case.

usage: head_gemm_shapes.py [--vocab 50257] [--width 768] [--rows 890,2040,4080] [--reps 20]
"""
import argparse, ctypes, glob

import torch

parser = argparse.ArgumentParser()
parser.add_argument("--vocab", type=int, default=50257)
parser.add_argument("--width", type=int, default=768)
parser.add_argument("--rows", default="890,2040,4080")
parser.add_argument("--reps", type=int, default=20)
args = parser.parse_args()

lib = None
for name in ["libcublas.so.13", "libcublas.so.12"] + glob.glob("/opt/torch/.venv/lib/python3*/site-packages/nvidia/*/lib/libcublas.so*"):
    try:
        lib = ctypes.CDLL(name)
        break
    except OSError:
        pass
if lib is None:
    raise SystemExit("head_gemm_shapes.py: no libcublas.so.13/.12 found")
vp, c_int = ctypes.c_void_p, ctypes.c_int
handle = vp()
assert lib.cublasCreate_v2(ctypes.byref(handle)) == 0
lib.cublasSetStream_v2(handle, vp(torch.cuda.current_stream().cuda_stream))
R32F, R16BF, COMPUTE_32F, OP_N, OP_T = 0, 14, 68, 0, 1


def gemm_row_major(m, n, k, a, lda, b, ldb, b_transposed, c, ldc, c_type):
    """Row-major C[m,n] = A[m,k]·op(B): column-major Cᵀ = op(B)ᵀ·Aᵀ, as GemmMapping does."""
    alpha, beta = ctypes.c_float(1.0), ctypes.c_float(0.0)
    status = lib.cublasGemmEx(handle, c_int(OP_T if b_transposed else OP_N), c_int(OP_N), c_int(n), c_int(m), c_int(k),
                              ctypes.byref(alpha), vp(b.data_ptr()), c_int(R16BF), c_int(ldb), vp(a.data_ptr()), c_int(R16BF), c_int(lda),
                              ctypes.byref(beta), vp(c.data_ptr()), c_int(c_type), c_int(ldc), c_int(COMPUTE_32F), c_int(-1))
    if status != 0:
        raise RuntimeError(f"cublasGemmEx m={m} n={n} k={k}: status {status}")


def time_ms(fn):
    for _ in range(3):
        fn()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(args.reps):
        fn()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / args.reps


def up(x, multiple):
    return (x + multiple - 1) // multiple * multiple


d, vocab = args.width, args.vocab
print(f"# {torch.cuda.get_device_name()}  vocab {vocab}  width {d}  reps {args.reps}")
print(f"{'gemm':<46} {'rows':>5} {'n/k':>6} {'ldc':>6} {'ms':>8} {'TFLOP/s':>8}")
weight_rows = up(vocab, 128)
weight = (torch.randn(weight_rows, d, device="cuda") * 0.02).to(torch.bfloat16)
for rows in [int(r) for r in args.rows.split(",")]:
    hidden = torch.randn(rows, d, device="cuda").to(torch.bfloat16)
    for label, n in [("as is", vocab), ("pad 8", up(vocab, 8)), ("pad 64", up(vocab, 64)), ("pad 128", up(vocab, 128))]:
        stride = up(n, 8)
        logits = torch.empty(rows, stride, device="cuda", dtype=torch.float32)
        logits_bf16 = torch.empty(rows, stride, device="cuda", dtype=torch.bfloat16)
        gradient = (torch.randn(rows, stride, device="cuda") * 1e-4).to(torch.bfloat16)
        dh = torch.empty(rows, d, device="cuda", dtype=torch.float32)
        flops = 2.0 * rows * n * d
        cases = [
            (f"logits fp32 = h·Wᵀ ({label})", lambda: gemm_row_major(rows, n, d, hidden, d, weight, d, True, logits, stride, R32F)),
            (f"logits bf16 = h·Wᵀ ({label})", lambda: gemm_row_major(rows, n, d, hidden, d, weight, d, True, logits_bf16, stride, R16BF)),
            (f"dh fp32 = dlogits·W ({label})", lambda: gemm_row_major(rows, d, n, gradient, stride, weight, d, False, dh, d, R32F)),
        ]
        for name, fn in cases:
            ms = time_ms(fn)
            print(f"{name:<46} {rows:>5} {n:>6} {stride:>6} {ms:>8.3f} {flops / ms / 1e9:>8.1f}", flush=True)
    ms = time_ms(lambda: torch.matmul(hidden, weight[:vocab].t()))
    print(f"{'torch.matmul bf16 h·Wᵀ (as is; PyTorch eager)':<46} {rows:>5} {vocab:>6} {'-':>6} {ms:>8.3f} {2.0 * rows * vocab * d / ms / 1e9:>8.1f}", flush=True)

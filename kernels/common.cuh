// common.cuh — the CUDA vocabulary of every SoftPrompt kernel, and the ONLY file that touches CUDA intrinsics.
//
// Compiled two ways from the same kernel sources, unchanged:
//   * by nvcc (PTX for compute_80):      every name below maps to the real intrinsic;
//   * by g++ for the CPU kernel emulator (SOFTPROMPT_EMULATOR defined, or no __CUDACC__): every name maps to
//     the emulator runtime in emu/emu_device.h (fibers per CUDA thread, real barriers, warp exchanges,
//     real atomics, per-block shared memory, AddressSanitizer on every buffer).
// Kernels never test SP_CUDA / SP_EMULATOR themselves: if a kernel needs something that is not here, add it
// here, for both sides, with a self-test in selftest.cu. See kernels/README.md for the rules.
#pragma once

#if defined(__CUDACC__) && !defined(SOFTPROMPT_EMULATOR)
#define SP_CUDA 1
#else
#define SP_EMULATOR 1
#endif

// ───────────────────────────────────────── CUDA side ─────────────────────────────────────────
#if defined(SP_CUDA)
#include <assert.h>   // device assert(); PTX is built with -DNDEBUG, so asserts are checked by the emulator only
#include <stdint.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>

// Static shared memory. Always 16-byte aligned so float4 accesses are legal.
#define SHARED(type, name, count) __shared__ __align__(16) type name[count]
#define SHARED2D(type, name, rows, cols) __shared__ __align__(16) type name[rows][cols]

// Dynamic shared memory (the launch's sharedMemoryBytes), viewed as T[].
template <typename T>
__device__ __forceinline__ T* dynamic_smem() {
    extern __shared__ __align__(16) unsigned char sp_dynamic_smem_[];
    return reinterpret_cast<T*>(sp_dynamic_smem_);
}

#define SP_FULL_MASK 0xffffffffu
template <typename T> __device__ __forceinline__ T warp_shfl(T v, int src_lane, int width = 32) { return __shfl_sync(SP_FULL_MASK, v, src_lane, width); }
template <typename T> __device__ __forceinline__ T warp_shfl_xor(T v, int lane_mask, int width = 32) { return __shfl_xor_sync(SP_FULL_MASK, v, lane_mask, width); }
template <typename T> __device__ __forceinline__ T warp_shfl_down(T v, unsigned delta, int width = 32) { return __shfl_down_sync(SP_FULL_MASK, v, delta, width); }
template <typename T> __device__ __forceinline__ T warp_shfl_up(T v, unsigned delta, int width = 32) { return __shfl_up_sync(SP_FULL_MASK, v, delta, width); }
__device__ __forceinline__ unsigned warp_ballot(bool p) { return __ballot_sync(SP_FULL_MASK, p); }
__device__ __forceinline__ bool warp_any(bool p) { return __any_sync(SP_FULL_MASK, p) != 0; }
__device__ __forceinline__ bool warp_all(bool p) { return __all_sync(SP_FULL_MASK, p) != 0; }

template <typename T> __device__ __forceinline__ T ldg(const T* p) { return __ldg(p); }

// bf16 / fp16 storage types: 2 bytes of IEEE bits. Math is done in float (to_float / to_bf16 / to_fp16), so
// the GPU and the emulator agree bit for bit; the CUDA types stay inside this file.
struct __align__(2) bf16 { unsigned short bits; };
struct __align__(2) fp16 { unsigned short bits; };
__device__ __forceinline__ bf16 to_bf16(float f) { bf16 r; r.bits = __bfloat16_as_ushort(__float2bfloat16_rn(f)); return r; }
__device__ __forceinline__ fp16 to_fp16(float f) { fp16 r; r.bits = __half_as_ushort(__float2half_rn(f)); return r; }
__device__ __forceinline__ float to_float(fp16 h) { return __half2float(__ushort_as_half(h.bits)); }

// Tensor-core warp primitives (sm_80+). Every one is a full-warp operation; fragments follow the PTX ISA
// ("Matrix Fragments for mma.m16n8k16", "ldmatrix"), which the emulator reproduces lane by lane.
// D (16x8, fp32) = A (16x16, row) · B (16x8, col) + C: a[4] / b[2] hold bf16 pairs (pack_bf16x2), c/d four floats.
__device__ __forceinline__ void mma_m16n8k16_bf16(float d[4], const unsigned a[4], const unsigned b[2], const float c[4]) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%10,%11,%12,%13};\n"
                 : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]),
                   "f"(c[0]), "f"(c[1]), "f"(c[2]), "f"(c[3]));
}
// The same with fp16 pairs (pack_fp16x2).
__device__ __forceinline__ void mma_m16n8k16_fp16(float d[4], const unsigned a[4], const unsigned b[2], const float c[4]) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%10,%11,%12,%13};\n"
                 : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]),
                   "f"(c[0]), "f"(c[1]), "f"(c[2]), "f"(c[3]));
}

// ldmatrix: lane 8j + r gives the shared-memory address of row r (16 bytes, 16-byte aligned) of 8x8 b16 matrix j;
// r[j] of lane i gets row i/4, columns 2(i%4) and 2(i%4)+1 of matrix j (.trans: column i/4, rows 2(i%4), +1).
// The "memory" clobbers keep the compiler from moving the read across this thread's own shared-memory stores.
__device__ __forceinline__ unsigned sp_smem_address(const void* p) { return static_cast<unsigned>(__cvta_generic_to_shared(p)); }
__device__ __forceinline__ void ldmatrix_x4(unsigned r[4], const void* smem_row) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(sp_smem_address(smem_row)) : "memory");
}
__device__ __forceinline__ void ldmatrix_x4_trans(unsigned r[4], const void* smem_row) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(sp_smem_address(smem_row)) : "memory");
}
// x2: only lanes 0-15 supply addresses (the others' are ignored but must still be callable).
__device__ __forceinline__ void ldmatrix_x2(unsigned r[2], const void* smem_row) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x2.shared.b16 {%0,%1}, [%2];\n"
                 : "=r"(r[0]), "=r"(r[1]) : "r"(sp_smem_address(smem_row)) : "memory");
}
__device__ __forceinline__ void ldmatrix_x2_trans(unsigned r[2], const void* smem_row) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%0,%1}, [%2];\n"
                 : "=r"(r[0]), "=r"(r[1]) : "r"(sp_smem_address(smem_row)) : "memory");
}

// cp.async: 16 bytes global → shared (both 16-byte aligned), bypassing L1 (.cg). The copy lands only by the
// cp_async_wait that covers its group; other threads see it after that wait and a __syncthreads.
__device__ __forceinline__ void cp_async_16(void* smem, const void* gmem) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n"
                 :: "r"(sp_smem_address(smem)), "l"(__cvta_generic_to_global(gmem)) : "memory");
}
// Closes the group of this thread's copies issued since the last commit.
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
// Waits until at most N of this thread's committed groups are still in flight (uncommitted copies are not waited for).
template <int N> __device__ __forceinline__ void cp_async_wait() { asm volatile("cp.async.wait_group %0;\n" :: "n"(N) : "memory"); }
// Commits the open group, then waits for every copy of this thread.
__device__ __forceinline__ void cp_async_wait_all() { asm volatile("cp.async.wait_all;\n" ::: "memory"); }

// ─────────────────────────────────────── emulator side ───────────────────────────────────────
#else
#include "emu/emu_device.h"   // qualifiers, uint3/dim3/float4…, threadIdx…, __syncthreads, atomics, math, SHARED
#endif

// ─────────────────────────── shared vocabulary (identical code on both sides) ───────────────────────────
#ifndef SP_WARP_SIZE
#define SP_WARP_SIZE 32
#endif

__device__ __forceinline__ bf16 bf16_from_bits(unsigned short bits) { bf16 r; r.bits = bits; return r; }
__device__ __forceinline__ fp16 fp16_from_bits(unsigned short bits) { fp16 r; r.bits = bits; return r; }
// bf16 → float is exact: the bf16 bits are the top half of the float.
__device__ __forceinline__ float to_float(bf16 b) { return __uint_as_float(static_cast<unsigned>(b.bits) << 16); }
// Two values as one 32-bit mma / ldmatrix register: the lower column (or k) index in the low 16 bits.
__device__ __forceinline__ unsigned pack_bf16x2(float lo, float hi) {
    return static_cast<unsigned>(to_bf16(lo).bits) | static_cast<unsigned>(to_bf16(hi).bits) << 16;
}
__device__ __forceinline__ unsigned pack_fp16x2(float lo, float hi) {
    return static_cast<unsigned>(to_fp16(lo).bits) | static_cast<unsigned>(to_fp16(hi).bits) << 16;
}

// Rank of this thread in its block (x fastest), and its lane / warp: the hardware's warp numbering.
__device__ __forceinline__ unsigned thread_rank() { return threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z); }
__device__ __forceinline__ unsigned block_size() { return blockDim.x * blockDim.y * blockDim.z; }
__device__ __forceinline__ unsigned lane_id() { return thread_rank() & (SP_WARP_SIZE - 1); }
__device__ __forceinline__ unsigned warp_id() { return thread_rank() / SP_WARP_SIZE; }
__device__ __forceinline__ int ceil_div(int a, int b) { return (a + b - 1) / b; }

// Butterfly reductions over the 32 lanes; every lane gets the result. All 32 lanes must call them.
template <typename T> __device__ __forceinline__ T warp_reduce_sum(T v) {
#pragma unroll
    for (int o = SP_WARP_SIZE / 2; o > 0; o >>= 1) v += warp_shfl_xor(v, o);
    return v;
}
template <typename T> __device__ __forceinline__ T warp_reduce_max(T v) {
#pragma unroll
    for (int o = SP_WARP_SIZE / 2; o > 0; o >>= 1) v = max(v, warp_shfl_xor(v, o));
    return v;
}
template <typename T> __device__ __forceinline__ T warp_reduce_min(T v) {
#pragma unroll
    for (int o = SP_WARP_SIZE / 2; o > 0; o >>= 1) v = min(v, warp_shfl_xor(v, o));
    return v;
}

// Block-wide sum of one float per thread; every thread gets the result. Block size must be a multiple
// of 32 (≤ 1024) and every thread of the block must call it (it contains __syncthreads). Safe to call twice
// in a row (the leading barrier protects the scratch array).
__device__ __forceinline__ float block_reduce_sum(float v) {
    SHARED(float, sp_block_partial_sum, 32);
    const unsigned warps = block_size() / SP_WARP_SIZE;
    v = warp_reduce_sum(v);
    __syncthreads();
    if (lane_id() == 0) sp_block_partial_sum[warp_id()] = v;
    __syncthreads();
    v = lane_id() < warps ? sp_block_partial_sum[lane_id()] : 0.0f;
    return warp_reduce_sum(v);
}

// float max through atomicCAS (for abs-max style reductions); returns the old value.
__device__ __forceinline__ float atomic_max_float(float* address, float value) {
    int* a = reinterpret_cast<int*>(address);
    int old = *a;
    while (__int_as_float(old) < value) {
        const int seen = atomicCAS(a, old, __float_as_int(value));
        if (seen == old) break;
        old = seen;
    }
    return __int_as_float(old);
}

// 16-byte / 8-byte vector loads and stores; the address must be aligned (the emulator traps if not, the GPU
// faults with "misaligned address").
#if defined(SP_CUDA)
__device__ __forceinline__ float4 load_float4(const float* p) { return *reinterpret_cast<const float4*>(p); }
__device__ __forceinline__ void store_float4(float* p, float4 v) { *reinterpret_cast<float4*>(p) = v; }
__device__ __forceinline__ float2 load_float2(const float* p) { return *reinterpret_cast<const float2*>(p); }
__device__ __forceinline__ void store_float2(float* p, float2 v) { *reinterpret_cast<float2*>(p) = v; }
#endif

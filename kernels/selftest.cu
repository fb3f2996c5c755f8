// selftest.cu — small kernels that exercise every piece of common.cuh, on the GPU and in the emulator alike.
// Launchers: src/SoftPrompt/Cuda/Kernels/SelftestKernels.cs. Tests: tests/SoftPrompt.Tests/Emulation/.
// They double as the examples to copy when writing a new kernel file.
#include "common.cuh"

// selftest_block_sum — block reduction with warp shuffles + shared memory (block_reduce_sum).
//   x: [n] fp32, block_sums: [gridDim.x] fp32.
//   Grid: ceil(n / blockDim.x) blocks; block: 256 threads (any multiple of 32 ≤ 1024); one element per thread.
//   block_sums[b] = Σ x[b·blockDim.x + t] over the block's elements (missing tail elements count as 0).
extern "C" __global__ void __launch_bounds__(1024) selftest_block_sum(const float* __restrict__ x, float* __restrict__ block_sums, int n) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    const float v = i < n ? x[i] : 0.0f;
    const float total = block_reduce_sum(v);
    if (threadIdx.x == 0) block_sums[blockIdx.x] = total;
}

// selftest_warp_ops — every warp primitive, one output row per thread.
//   x: [n] fp32 with n = gridDim.x · blockDim.x (whole warps); out: [n, 8] fp32; votes: [n / 32, 4] u32.
//   out[i] = { warp_reduce_sum(x), warp_reduce_max(x), warp_reduce_min(x), shfl_down(x, 1), shfl_up(x, 3),
//              shfl(x, lane 7), shfl_xor(x, 5), shfl_xor(x, 1, width 8)... see the C# expectation }.
//   votes[w] = { ballot(x > 0), any(x > 100), all(x > -100), ballot(lane is odd) } — written by lane 0.
extern "C" __global__ void selftest_warp_ops(const float* __restrict__ x, float* __restrict__ out, unsigned* __restrict__ votes) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    const float v = x[i];
    float* o = out + 8 * i;
    o[0] = warp_reduce_sum(v);
    o[1] = warp_reduce_max(v);
    o[2] = warp_reduce_min(v);
    o[3] = warp_shfl_down(v, 1);
    o[4] = warp_shfl_up(v, 3);
    o[5] = warp_shfl(v, 7);
    o[6] = warp_shfl_xor(v, 5);
    o[7] = warp_shfl_down(v, 2, 8);
    const unsigned positive = warp_ballot(v > 0.0f);
    const bool any_big = warp_any(v > 100.0f);
    const bool all_above = warp_all(v > -100.0f);
    const unsigned odd = warp_ballot((lane_id() & 1) != 0);
    if (lane_id() == 0) {
        unsigned* w = votes + 4 * (i / 32);
        w[0] = positive;
        w[1] = any_big ? 1u : 0u;
        w[2] = all_above ? 1u : 0u;
        w[3] = odd;
    }
}

// selftest_histogram — shared-memory histogram with int atomics, then global atomics.
//   values: [n] int in [0, bins), bins ≤ 256; counts: [bins] int (zeroed by the caller).
//   Grid: any (grid-stride loop); block: any. Each block counts into shared memory, then adds into counts.
extern "C" __global__ void selftest_histogram(const int* __restrict__ values, int n, int* __restrict__ counts, int bins) {
    SHARED(int, local, 256);
    for (int b = threadIdx.x; b < bins; b += blockDim.x) local[b] = 0;
    __syncthreads();
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) atomicAdd(&local[values[i]], 1);
    __syncthreads();
    for (int b = threadIdx.x; b < bins; b += blockDim.x)
        if (local[b] != 0) atomicAdd(&counts[b], local[b]);
}

// selftest_atomics — the other atomics.
//   values: [n] int; result: [4] as { int max, float sum, unsigned CAS-incremented counter, float max }
//   (initialized by the caller to { INT_MIN, 0, 0, -inf }). Grid/block: any; one element per thread.
extern "C" __global__ void selftest_atomics(const int* __restrict__ values, int n, int* result) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    atomicMax(&result[0], values[i]);
    atomicAdd(reinterpret_cast<float*>(&result[1]), static_cast<float>(values[i]));
    unsigned* counter = reinterpret_cast<unsigned*>(&result[2]);
    unsigned old = atomicAdd(counter, 0u), seen;
    while ((seen = atomicCAS(counter, old, old + 1)) != old) old = seen;
    atomic_max_float(reinterpret_cast<float*>(&result[3]), 0.5f * static_cast<float>(values[i]));
}

// selftest_reverse — barrier ordering: each block reverses its chunk through shared memory.
//   in, out: [n] fp32. Grid: ceil(n / 256); block: 256. out[base + (len-1-t)] = in[base + t], where
//   base = blockIdx.x · 256 and len = min(256, n - base). Thread t reads what thread len-1-t wrote.
extern "C" __global__ void __launch_bounds__(256) selftest_reverse(const float* __restrict__ in, float* __restrict__ out, int n) {
    SHARED(float, tile, 256);
    const int base = blockIdx.x * 256;
    const int len = min(256, n - base);
    const int t = threadIdx.x;
    if (t < len) tile[t] = in[base + t];
    __syncthreads();
    if (t < len) out[base + t] = tile[len - 1 - t];
}

// selftest_scan — dynamic shared memory: inclusive prefix sum per block (Hillis–Steele, double buffered).
//   in, out: [n] fp32. Grid: ceil(n / blockDim.x); block: any ≤ 1024.
//   Dynamic shared memory: 2 · blockDim.x floats. out[i] = Σ in[base .. i] within the block's chunk.
extern "C" __global__ void selftest_scan(const float* __restrict__ in, float* __restrict__ out, int n) {
    float* buffer = dynamic_smem<float>();
    const int t = threadIdx.x, width = blockDim.x;
    const int i = blockIdx.x * width + t;
    int read = 0;
    buffer[t] = i < n ? in[i] : 0.0f;
    __syncthreads();
    for (int offset = 1; offset < width; offset <<= 1) {
        const int write = 1 - read;
        const float v = buffer[read * width + t] + (t >= offset ? buffer[read * width + t - offset] : 0.0f);
        buffer[write * width + t] = v;
        __syncthreads();
        read = write;
    }
    if (i < n) out[i] = buffer[read * width + t];
}

// selftest_convert — bf16/fp16 round trips, vector loads and the math wrappers.
//   in: [n] fp32 with n a multiple of 4 and in 16-byte aligned; bf16_out, fp16_out: [n] (bits);
//   back: [n, 2] fp32 = { to_float(bf16), to_float(fp16) }; math: [n, 6] fp32 =
//   { expf, tanhf, rsqrtf(|x| + 1), __expf, fmaxf(x, 0), __fdividef(x, 3) }.
//   Grid/block: any covering n / 4 threads; each thread handles one float4.
extern "C" __global__ void selftest_convert(const float* __restrict__ in, bf16* __restrict__ bf16_out, fp16* __restrict__ fp16_out,
                                            float* __restrict__ back, float* __restrict__ math, int n) {
    const int q = blockIdx.x * blockDim.x + threadIdx.x;
    if (4 * q >= n) return;
    const float4 v = load_float4(in + 4 * q);
    const float xs[4] = {v.x, v.y, v.z, v.w};
    for (int k = 0; k < 4; ++k) {
        const int i = 4 * q + k;
        const float x = xs[k];
        const bf16 b = to_bf16(x);
        const fp16 h = to_fp16(x);
        bf16_out[i] = b;
        fp16_out[i] = h;
        store_float2(back + 2 * i, make_float2(to_float(b), to_float(h)));
        float* m = math + 6 * i;
        m[0] = expf(x);
        m[1] = tanhf(x);
        m[2] = rsqrtf(fabsf(x) + 1.0f);
        m[3] = __expf(x);
        m[4] = fmaxf(x, 0.0f);
        m[5] = __fdividef(x, 3.0f);
    }
}

// selftest_mma — one mma_m16n8k16_bf16 per warp on fragment registers given per lane.
//   a: [32, 4] (lane-major) bf16x2 registers, b: [32, 2], c and d: [32, 4] fp32. Grid 1, block 32.
//   The caller packs the registers by the PTX ISA's fragment layout, so the result tests the layout as well as the product.
extern "C" __global__ void __launch_bounds__(32) selftest_mma(const unsigned* a, const unsigned* b, const float* c, float* d) {
    const unsigned l = lane_id();
    const unsigned ar[4] = {a[4 * l], a[4 * l + 1], a[4 * l + 2], a[4 * l + 3]};
    const unsigned br[2] = {b[2 * l], b[2 * l + 1]};
    const float cr[4] = {c[4 * l], c[4 * l + 1], c[4 * l + 2], c[4 * l + 3]};
    float dr[4];
    mma_m16n8k16_bf16(dr, ar, br, cr);
    for (int k = 0; k < 4; ++k) d[4 * l + k] = dr[k];
}

// selftest_ldmatrix — four 8×8 bf16 matrices (m: [4, 8, 8] bits, row-major) copied to shared memory by cp_async_16,
// then read back with ldmatrix_x4, ldmatrix_x4_trans and ldmatrix_x2. out: [32, 10] registers per lane (x4, x4.trans, x2).
//   Grid 1, block 32. Lane l points at row l % 8 of matrix l / 8.
extern "C" __global__ void __launch_bounds__(32) selftest_ldmatrix(const bf16* m, unsigned* out) {
    SHARED(bf16, tile, 4 * 8 * 8);
    const unsigned l = lane_id();
    cp_async_16(tile + 8 * l, m + 8 * l);  // 32 lanes × 16 bytes: the whole 512-byte tile
    cp_async_commit();
    cp_async_wait_all();
    __syncthreads();
    unsigned x4[4], t4[4], x2[2];
    ldmatrix_x4(x4, tile + 8 * l);
    ldmatrix_x4_trans(t4, tile + 8 * l);
    ldmatrix_x2(x2, tile + 8 * (l % 16));
    for (int k = 0; k < 4; ++k) out[10 * l + k] = x4[k];
    for (int k = 0; k < 4; ++k) out[10 * l + 4 + k] = t4[k];
    out[10 * l + 8] = x2[0];
    out[10 * l + 9] = x2[1];
}

// ── deliberately broken kernels: the emulator must report them (never launched on a real GPU) ──

// selftest_oob_write — writes out[n], one element past the end (AddressSanitizer must stop it).
extern "C" __global__ void selftest_oob_write(float* out, int n) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i == 0) out[n] = 1.0f;
}

// selftest_assert_nonneg — assert(x[i] >= 0): the emulator must turn a failure into an error string.
extern "C" __global__ void selftest_assert_nonneg(const int* x, int n) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) assert(x[i] >= 0);
}

// selftest_divergent_barrier — lane 0 of warp 0 waits at __syncthreads while the rest of its warp waits in a
// vote: a deadlock the emulator must report. Block: 64 threads.
extern "C" __global__ void selftest_divergent_barrier(unsigned* out) {
    if (threadIdx.x == 0) {
        __syncthreads();
    } else {
        out[threadIdx.x] = warp_ballot(true);
        __syncthreads();
    }
}

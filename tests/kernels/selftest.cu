// selftest.cu — small kernels that exercise every piece of common.cuh, on the GPU and in the emulator alike: the
// test-only kernel module (kernels/build-kernels.sh builds it beside the product's; only the tests load it).
// Launchers: tests/SoftPrompt.Tests/Kernels/Selftest.cs. Tests: tests/SoftPrompt.Tests/Emulation/.
// They double as the examples to copy when writing a new kernel file.
#include "common.cuh"

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

// selftest_pack — pack_bf16x2 / pack_fp16x2.
//   x: [n, 2] fp32; out: [n, 2] u32 = { pack_bf16x2(x[i][0], x[i][1]), pack_fp16x2(x[i][0], x[i][1]) }.
//   Grid/block: any covering n threads.
extern "C" __global__ void selftest_pack(const float* __restrict__ x, unsigned* __restrict__ out, int n) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    out[2 * i] = pack_bf16x2(x[2 * i], x[2 * i + 1]);
    out[2 * i + 1] = pack_fp16x2(x[2 * i], x[2 * i + 1]);
}

// selftest_mma — one mma_m16n8k16 per block on fragment registers laid out by the host, so that the host's own copy
// of the PTX ISA fragment table is what the result is checked against.
//   a: [blocks, 32, 4] u32 and b: [blocks, 32, 2] u32 (bf16 pairs, or fp16 pairs when use_fp16 != 0); c, d: [blocks,
//   32, 4] fp32: lane l's registers at [block, l]. Grid: one block per product; block: 32 threads (one warp).
extern "C" __global__ void __launch_bounds__(32) selftest_mma(const unsigned* __restrict__ a, const unsigned* __restrict__ b, const float* __restrict__ c,
                                                              float* __restrict__ d, int use_fp16) {
    const int i = blockIdx.x * 32 + lane_id();
    unsigned ra[4], rb[2];
    float rc[4], rd[4];
    for (int r = 0; r < 4; ++r) ra[r] = a[4 * i + r];
    for (int r = 0; r < 2; ++r) rb[r] = b[2 * i + r];
    for (int r = 0; r < 4; ++r) rc[r] = c[4 * i + r];
    if (use_fp16) mma_m16n8k16_fp16(rd, ra, rb, rc);
    else mma_m16n8k16_bf16(rd, ra, rb, rc);
    for (int r = 0; r < 4; ++r) d[4 * i + r] = rd[r];
}

// selftest_ldmatrix — every ldmatrix form on one shared tile.
//   tile: [64, 8] b16 (any bits), copied to shared memory; rows: [32] int in [0, 64): the tile row lane l addresses;
//   out: [32, 12] u32, per lane { x4 r0..r3, x4.trans r0..r3, x2 r0 r1, x2.trans r0 r1 }. Grid: 1; block: 32.
extern "C" __global__ void __launch_bounds__(32) selftest_ldmatrix(const bf16* __restrict__ tile, const int* __restrict__ rows, unsigned* __restrict__ out) {
    SHARED(bf16, smem, 64 * 8);
    const int lane = lane_id();
    for (int e = lane; e < 64 * 8; e += 32) smem[e] = tile[e];
    __syncwarp();
    const bf16* row = smem + 8 * rows[lane];
    unsigned r[12];
    ldmatrix_x4(r, row);
    ldmatrix_x4_trans(r + 4, row);
    ldmatrix_x2(r + 8, row);
    ldmatrix_x2_trans(r + 10, row);
    for (int k = 0; k < 12; ++k) out[12 * lane + k] = r[k];
}

// selftest_cp_async — three cp.async groups global → shared, landed by wait_group 1, wait_group 0 and wait_all.
//   src, out: [3, 256] fp32 (16-byte aligned); out = the three shared tiles read back, each element by another
//   thread than the one that copied it (after the wait and a __syncthreads). Grid: 1; block: 64 (one 16-byte chunk
//   per thread and tile).
extern "C" __global__ void __launch_bounds__(64) selftest_cp_async(const float* __restrict__ src, float* __restrict__ out) {
    SHARED2D(float, tiles, 3, 256);
    const int t = threadIdx.x;
    cp_async_16(&tiles[0][4 * t], src + 4 * t);
    cp_async_commit();
    cp_async_16(&tiles[1][4 * t], src + 256 + 4 * t);
    cp_async_commit();
    cp_async_16(&tiles[2][4 * t], src + 512 + 4 * t);  // left open: cp_async_wait_all commits it
    cp_async_wait<1>();
    __syncthreads();
    for (int e = t; e < 256; e += 64) out[e] = tiles[0][e];
    cp_async_wait<0>();
    __syncthreads();
    for (int e = t; e < 256; e += 64) out[256 + e] = tiles[1][e];
    cp_async_wait_all();
    __syncthreads();
    for (int e = t; e < 256; e += 64) out[512 + e] = tiles[2][e];
}

namespace selftest_detail {
constexpr int kGemmTile = 64;                 // block tile: 64x64 of C
constexpr int kGemmStep = 32;                 // K per shared-memory stage
// Rows padded by 8 elements (16 bytes) so that the 8 rows one ldmatrix matrix reads fall in different banks.
constexpr int kGemmAStride = kGemmStep + 8;   // a stage: [64 rows of A][K step]
constexpr int kGemmBStride = kGemmTile + 8;   // b stage: [K step][64 columns of B]

// One stage: 64x32 of A and 32x64 of B in 16-byte cp.async chunks, two of each per thread of the 128, one group.
__device__ __forceinline__ void gemm_load_stage(bf16* a_stage, bf16* b_stage, const bf16* a, const bf16* b, int n, int k,
                                                int row0, int col0, int k0) {
    for (int chunk = static_cast<int>(threadIdx.x); chunk < 256; chunk += 128) {
        const int ar = chunk / 4, ak = 8 * (chunk % 4);
        cp_async_16(a_stage + ar * kGemmAStride + ak, a + static_cast<long long>(row0 + ar) * k + k0 + ak);
        const int bk = chunk / 8, bc = 8 * (chunk % 8);
        cp_async_16(b_stage + bk * kGemmBStride + bc, b + static_cast<long long>(k0 + bk) * n + col0 + bc);
    }
    cp_async_commit();
}
}  // namespace selftest_detail

// selftest_gemm_bf16 — the tensor-core primitives composed: c = a · b with bf16 inputs and fp32 accumulation.
//   a: [m, k] bf16 row-major; b: [k, n] bf16 row-major; c: [m, n] fp32. m, n multiples of 64, k of 32.
//   Grid: (n / 64, m / 64), one 64x64 tile of c per block; block: 128 threads = 2x2 warps of 32x32 each.
//   K runs in steps of 32 through two shared stages: cp.async fills the next while the warps multiply this one.
//   A fragments come from ldmatrix.x4 (rows as stored), B fragments from ldmatrix.x4.trans (B is k-major).
extern "C" __global__ void __launch_bounds__(128) selftest_gemm_bf16(const bf16* __restrict__ a, const bf16* __restrict__ b, float* __restrict__ c,
                                                                     int m, int n, int k) {
    using namespace selftest_detail;
    SHARED(bf16, a_stages, 2 * kGemmTile * kGemmAStride);
    SHARED(bf16, b_stages, 2 * kGemmStep * kGemmBStride);
    const int lane = static_cast<int>(lane_id()), warp = static_cast<int>(warp_id());
    const int row0 = blockIdx.y * kGemmTile, col0 = blockIdx.x * kGemmTile;
    const int warp_row = 32 * (warp / 2), warp_col = 32 * (warp % 2);
    float acc[2][4][4] = {};  // [16-row block][8-column block][c fragment]

    const int steps = k / kGemmStep;
    gemm_load_stage(a_stages, b_stages, a, b, n, k, row0, col0, 0);
    for (int s = 0; s < steps; ++s) {
        if (s + 1 < steps) {
            const int next = (s + 1) % 2;
            gemm_load_stage(a_stages + next * kGemmTile * kGemmAStride, b_stages + next * kGemmStep * kGemmBStride, a, b, n, k,
                            row0, col0, (s + 1) * kGemmStep);
            cp_async_wait<1>();  // this stage's group has landed; the next one may still be in flight
        } else {
            cp_async_wait<0>();
        }
        __syncthreads();
        const bf16* as = a_stages + (s % 2) * kGemmTile * kGemmAStride;
        const bf16* bs = b_stages + (s % 2) * kGemmStep * kGemmBStride;
        for (int kk = 0; kk < kGemmStep; kk += 16) {
            // ldmatrix matrix j = lane / 8. For A: rows +8 for odd j, k +8 for j ≥ 2 — the order of a0..a3's registers.
            unsigned af[2][4], bfrag[4][2];
            for (int mi = 0; mi < 2; ++mi)
                ldmatrix_x4(af[mi], as + (warp_row + 16 * mi + lane % 16) * kGemmAStride + kk + 8 * (lane / 16));
            // For B: k +8 for odd j (b's second register), columns +8 for j ≥ 2 (the next 8-column block).
            for (int nj = 0; nj < 2; ++nj) {
                unsigned r[4];
                ldmatrix_x4_trans(r, bs + (kk + lane % 16) * kGemmBStride + warp_col + 16 * nj + 8 * (lane / 16));
                bfrag[2 * nj][0] = r[0];
                bfrag[2 * nj][1] = r[1];
                bfrag[2 * nj + 1][0] = r[2];
                bfrag[2 * nj + 1][1] = r[3];
            }
            for (int mi = 0; mi < 2; ++mi)
                for (int ni = 0; ni < 4; ++ni) mma_m16n8k16_bf16(acc[mi][ni], af[mi], bfrag[ni], acc[mi][ni]);
        }
        __syncthreads();  // every warp is done with this stage before the next iteration's cp.async refills it
    }
    for (int mi = 0; mi < 2; ++mi)
        for (int ni = 0; ni < 4; ++ni) {
            const int row = row0 + warp_row + 16 * mi + lane / 4, col = col0 + warp_col + 8 * ni + 2 * (lane % 4);
            store_float2(c + static_cast<long long>(row) * n + col, make_float2(acc[mi][ni][0], acc[mi][ni][1]));
            store_float2(c + static_cast<long long>(row + 8) * n + col, make_float2(acc[mi][ni][2], acc[mi][ni][3]));
        }
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

// selftest_cp_async_no_wait — reads a cp.async tile after commit and __syncthreads but without a wait: a race on a
// GPU, and in the emulator a certain failure (the copy has not landed, the read sees the 0xFF fill).
//   src, out: [256] fp32. Grid: 1; block: 64.
extern "C" __global__ void __launch_bounds__(64) selftest_cp_async_no_wait(const float* __restrict__ src, float* __restrict__ out) {
    SHARED(float, tile, 256);
    const int t = threadIdx.x;
    cp_async_16(&tile[4 * t], src + 4 * t);
    cp_async_commit();
    __syncthreads();
    for (int e = t; e < 256; e += 64) out[e] = tile[e];
}

// selftest_missing_barrier — thread 0 writes a shared value that every thread then reads, with no __syncthreads between:
// a race on a GPU. The emulator's forward sweep runs thread 0 first (the race hides); its reverse sweep runs it last,
// so the other threads read the 0xFF fill.
//   out: [64] int. Grid: 1; block: 64.
extern "C" __global__ void __launch_bounds__(64) selftest_missing_barrier(int* __restrict__ out) {
    SHARED(int, value, 1);
    if (threadIdx.x == 0) value[0] = 42;
    out[threadIdx.x] = value[0];
}

// selftest_mma_half_warp — lanes 16-31 exit, the rest call mma: the emulator must refuse the partial warp.
//   d: [32, 4] fp32. Grid: 1; block: 32.
extern "C" __global__ void selftest_mma_half_warp(float* d) {
    if (lane_id() >= 16) return;
    const unsigned a[4] = {0, 0, 0, 0}, b[2] = {0, 0};
    const float c[4] = {0, 0, 0, 0};
    mma_m16n8k16_bf16(d + 4 * lane_id(), a, b, c);
}

// attention_common.cuh — what attention.cu (fp32 SIMT) and attention_tc.cu (bf16 tensor cores) share: the launch's
// inputs (Args), the key limit of a batch row, the vector-path test and the bias-diagonal lookup. Both kernel families
// take the same parameters with the same meaning (see attention.cu's header comment). Include after common.cuh.
#pragma once
#include "common.cuh"
#include "kernel_helpers.cuh"

namespace attention_common {

constexpr int kThreads = 128;  // every attention kernel: 4 warps
constexpr float kLog2e = 1.4426950408889634f;

// True when every pointer is 16-byte aligned and hs and every row stride are multiples of M (`ints`: their bitwise or;
// M = 4 by default): every head row starts 16-byte aligned (M = 16 / element bytes) or 4-element aligned, and tiles move
// as vectors. Otherwise scalar loads and stores (same results).
template <int M = 4, typename... P>
__device__ __forceinline__ bool vector_ok(int ints, const P*... p) {
    return (ints & (M - 1)) == 0 && (aligned16(p) && ...);
}

// Keys row b may attend to: key_lengths[b] (in [1, Tk]; checked by the emulator, clamped to Tk so a bad length
// cannot read past k / v), or Tk when key_lengths is null.
__device__ __forceinline__ int key_limit(const int* __restrict__ key_lengths, int b, int Tk) {
    if (key_lengths == nullptr) return Tk;
    const int keys = ldg(key_lengths + b);
    assert(keys >= 1 && keys <= Tk);
    return min(keys, Tk);
}

// The bias of the N = TR + TC − 1 diagonals crossed by a tile of TR query rows starting at q0 and TC key columns
// starting at k0: sB[x] = bias of relative position (key − query) = k0 − q0 − (TR − 1) + x, so query q0 + r and key
// k0 + c read sB[c − r + TR − 1]. Positions outside [1 − Tq, Tk − 1] (padding rows and columns) and a null table
// give 0.
template <int TR, int TC>
__device__ __forceinline__ void load_bias(float* __restrict__ sB, const float* __restrict__ table,
                                          const int* __restrict__ bucket_by_offset, int q0, int k0, int Tq, int Tk, int H,
                                          int h) {
    constexpr int N = TR + TC - 1;
    const int first = k0 - q0 - (TR - 1) + Tq - 1;  // index into bucket_by_offset of sB[0]
    for (int x = static_cast<int>(threadIdx.x); x < N; x += kThreads) {
        const int o = first + x;
        float value = 0.0f;
        if (table != nullptr && o >= 0 && o < Tq + Tk - 1) value = ldg(table + ldg(bucket_by_offset + o) * H + h);
        sB[x] = value;
    }
}

// The inputs and shape of one launch, as every kernel receives them. T: the storage type of q, k, v (and of the
// forward's out): float, or bf16 (bf16 precision: widened exactly on load, out rounded to nearest even on store).
template <typename T>
struct Args {
    const T* q;
    const T* k;
    const T* v;
    const float* table;
    const int* bucket_by_offset;
    const int* key_lengths;
    int q_stride, k_stride, v_stride, Tq, Tk, H, hs;
    bool causal;
    float scale;
    // Key/value heads (grouped-query attention, attention_tc.cu only): query head h reads kv head h / (H / Hkv), whose
    // columns in k and v start at that index·hs. H when the caller has no groups.
    int Hkv;
    __device__ __forceinline__ int kv_head(int h) const { return h / (H / Hkv); }
};

template <typename T>
__device__ __forceinline__ Args<T> inputs(const T* q, const T* k, const T* v, const float* table, const int* bucket_by_offset,
                                       const int* key_lengths, int q_stride, int k_stride, int v_stride, int Tq, int Tk, int H,
                                       int hs, int causal, float scale, int Hkv = 0) {
    assert(Hkv == 0 || (Hkv >= 1 && H % Hkv == 0));
    return Args<T>{q, k, v, table, bucket_by_offset, key_lengths, q_stride, k_stride, v_stride, Tq, Tk, H, hs, causal != 0, scale, Hkv == 0 ? H : Hkv};
}

}  // namespace attention_common

// ───────────── bf16 tensor-core tiles (attention_tc.cu) ─────────────
// A tile of ROWS head rows lives in shared memory as bf16 [ROWS][D + 8]: the 16-byte pad puts the 8 rows one ldmatrix
// matrix reads in 8 different bank groups. Fragments follow the PTX ISA's m16n8k16 layout; in a warp, g = lane / 4
// and t = lane % 4: an A fragment (16×16, rows × k) holds (g, 2t..2t+1), (g+8, 2t..), (g, 2t+8..), (g+8, 2t+8..); a
// B fragment (16×8, k × n) holds (2t..2t+1, g), (2t+8.., g); a C fragment (16×8) holds (g, 2t..2t+1), (g+8, 2t..).
namespace attention_tc_tiles {

using attention_common::kThreads;

// Staging of activations (bf16 q, k, v, or the fp32 dout) into bf16 tiles, in two steps so that the global loads of the
// next tile overlap the tensor-core work on this one: stage_rows issues the cp.async copies (16 bytes: 4 floats or 8
// bf16) of rows [0, rows) of a [ROWS][D] tile of T into a landing buffer (plain loads and stores when `vec` is false: an
// unaligned pointer or stride); after the cp_async_wait and a __syncthreads, land_rows rounds fp32 to bf16 (RNE), or
// copies bf16 as is, into the tile the mma loop reads, with zeros for rows ≥ rows. A slot holds ROWS·D elements of T.
template <int ROWS, int D, typename T>
__device__ __forceinline__ void stage_rows(T* __restrict__ landing, const T* __restrict__ src, int stride, int rows, bool vec) {
    constexpr int kVec = 16 / static_cast<int>(sizeof(T)), kChunks = D / kVec;
    for (int idx = static_cast<int>(threadIdx.x); idx < ROWS * kChunks; idx += kThreads) {
        const int r = idx / kChunks, c = (idx % kChunks) * kVec;
        if (r >= rows) continue;
        const T* p = src + static_cast<long long>(r) * stride + c;
        if (vec) cp_async_16(landing + r * D + c, p);
        else
#pragma unroll
            for (int i = 0; i < kVec; ++i) landing[r * D + c + i] = p[i];
    }
}

template <int ROWS, int D, int LD>
__device__ __forceinline__ void land_rows(bf16* __restrict__ tile, const float* __restrict__ landing, int rows) {
    constexpr int kChunks = D / 4;
    for (int idx = static_cast<int>(threadIdx.x); idx < ROWS * kChunks; idx += kThreads) {
        const int r = idx / kChunks, c = (idx % kChunks) * 4;
        const float4 v = r < rows ? load_float4(landing + r * D + c) : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
        *reinterpret_cast<uint2*>(tile + r * LD + c) = make_uint2(pack_bf16x2(v.x, v.y), pack_bf16x2(v.z, v.w));
    }
}

template <int ROWS, int D, int LD>
__device__ __forceinline__ void land_rows(bf16* __restrict__ tile, const bf16* __restrict__ landing, int rows) {
    constexpr int kChunks = D / 8;
    for (int idx = static_cast<int>(threadIdx.x); idx < ROWS * kChunks; idx += kThreads) {
        const int r = idx / kChunks, c = (idx % kChunks) * 8;
        *reinterpret_cast<uint4*>(tile + r * LD + c) =
            r < rows ? *reinterpret_cast<const uint4*>(landing + r * D + c) : make_uint4(0u, 0u, 0u, 0u);
    }
}

// Rows [0, rows) of a bf16 [ROWS][D] block straight into the padded bf16 tile the mma loop reads, by cp.async (no
// landing buffer: nothing to convert), zeros for rows ≥ rows; plain loads and stores when `vec` is false. The copies
// join the caller's next cp_async_commit group: the tile is ready after the cp_async_wait covering it and a
// __syncthreads, so its loads overlap whatever the block does before that wait.
template <int ROWS, int D, int LD>
__device__ __forceinline__ void stage_tile(bf16* __restrict__ tile, const bf16* __restrict__ src, int stride, int rows, bool vec) {
    constexpr int kChunks = D / 8;
    for (int idx = static_cast<int>(threadIdx.x); idx < ROWS * kChunks; idx += kThreads) {
        const int r = idx / kChunks, c = (idx % kChunks) * 8;
        bf16* dst = tile + r * LD + c;
        const bf16* p = src + static_cast<long long>(r) * stride + c;
        if (r >= rows) *reinterpret_cast<uint4*>(dst) = make_uint4(0u, 0u, 0u, 0u);
        else if (vec) cp_async_16(dst, p);
        else
#pragma unroll
            for (int i = 0; i < 8; ++i) dst[i] = p[i];
    }
}

// A fragment of rows [r0, r0 + 16), k columns [k0, k0 + 16) of a row-major bf16 tile (ldmatrix matrices: rows +8 for
// odd j, k +8 for j ≥ 2 — the order of a0..a3).
__device__ __forceinline__ void a_frag(unsigned a[4], const bf16* tile, int ld, int r0, int k0) {
    const int lane = static_cast<int>(lane_id());
    ldmatrix_x4(a, tile + (r0 + (lane & 15)) * ld + k0 + 8 * (lane >> 4));
}

// B fragments of two 8-column blocks n0 and n0 + 8 when B[k][n] = tile[n][k] (the tile's rows are B's columns, e.g.
// K in Q·Kᵀ): b[0..1] for columns n0.., b[2..3] for n0 + 8... Matrices: k +8 for odd j, n +8 for j ≥ 2.
__device__ __forceinline__ void b_frags_nt(unsigned b[4], const bf16* tile, int ld, int n0, int k0) {
    const int lane = static_cast<int>(lane_id());
    ldmatrix_x4(b, tile + (n0 + (lane & 7) + 8 * (lane >> 4)) * ld + k0 + 8 * ((lane >> 3) & 1));
}

// B fragments of two 8-column blocks n0 and n0 + 8 when B[k][n] = tile[k][n] (the tile's rows are B's k, e.g. V in
// P·V): ldmatrix .trans; b[0..1] for columns n0.., b[2..3] for n0 + 8...
__device__ __forceinline__ void b_frags_nn(unsigned b[4], const bf16* tile, int ld, int k0, int n0) {
    const int lane = static_cast<int>(lane_id());
    ldmatrix_x4_trans(b, tile + (k0 + (lane & 15)) * ld + n0 + 8 * (lane >> 4));
}

// The A fragment (16 rows × 16 k) made of two C fragments of adjacent 8-column blocks (k 0..7 and 8..15): how a
// score tile computed by one mma becomes the left operand of the next (P·V) without leaving the registers.
__device__ __forceinline__ void c_to_a(unsigned a[4], const float lo[4], const float hi[4]) {
    a[0] = pack_bf16x2(lo[0], lo[1]);
    a[1] = pack_bf16x2(lo[2], lo[3]);
    a[2] = pack_bf16x2(hi[0], hi[1]);
    a[3] = pack_bf16x2(hi[2], hi[3]);
}

// acc[n] (N / 8 C fragments: 16 rows × N) += A (rows [r0, r0 + 16) × K of `a_tile`) · B, B[k][n] = b_tile[n][k].
template <int N, int K>
__device__ __forceinline__ void warp_mma_nt(float (&acc)[N / 8][4], const bf16* a_tile, int lda, int r0, const bf16* b_tile,
                                            int ldb) {
#pragma unroll
    for (int k0 = 0; k0 < K; k0 += 16) {
        unsigned a[4];
        a_frag(a, a_tile, lda, r0, k0);
#pragma unroll
        for (int n = 0; n < N / 8; n += 2) {
            unsigned b[4];
            b_frags_nt(b, b_tile, ldb, 8 * n, k0);
            mma_m16n8k16_bf16(acc[n], a, b, acc[n]);
            mma_m16n8k16_bf16(acc[n + 1], a, b + 2, acc[n + 1]);
        }
    }
}

// acc[n] (N / 8 C fragments) += A · B with A given as K / 8 C fragments in registers (c_to_a) and B[k][n] =
// b_tile[k][n].
template <int N, int K>
__device__ __forceinline__ void warp_mma_cn(float (&acc)[N / 8][4], const float (&a_c)[K / 8][4], const bf16* b_tile, int ldb) {
#pragma unroll
    for (int k = 0; k < K / 8; k += 2) {
        unsigned a[4];
        c_to_a(a, a_c[k], a_c[k + 1]);
#pragma unroll
        for (int n = 0; n < N / 8; n += 2) {
            unsigned b[4];
            b_frags_nn(b, b_tile, ldb, 8 * k, 8 * n);
            mma_m16n8k16_bf16(acc[n], a, b, acc[n]);
            mma_m16n8k16_bf16(acc[n + 1], a, b + 2, acc[n + 1]);
        }
    }
}

// Stores C fragments of 16 rows × D head columns, times mul, as rows of T (fp32, or bf16 rounded to nearest even): row
// r0 + g (+8) at dst + row·stride (rows ≥ `rows` skipped), columns 8n + 2t, +1. One 2-element store when `vec`.
template <int D, typename T>
__device__ __forceinline__ void store_c_rows(T* __restrict__ dst, long long stride, const float (&acc)[D / 8][4], int r0,
                                             int rows, float mul_lo, float mul_hi, bool vec) {
    const int lane = static_cast<int>(lane_id()), g = lane >> 2, t = lane & 3;
#pragma unroll
    for (int half = 0; half < 2; ++half) {
        const int r = r0 + g + 8 * half;
        if (r >= rows) continue;
        const float mul = half ? mul_hi : mul_lo;
        T* p = dst + r * stride + 2 * t;
#pragma unroll
        for (int n = 0; n < D / 8; ++n) {
            const float xy[2] = {acc[n][2 * half] * mul, acc[n][2 * half + 1] * mul};
            if (vec) store_vec<2>(p + 8 * n, xy);
            else { store_value(p + 8 * n, xy[0]); store_value(p + 8 * n + 1, xy[1]); }
        }
    }
}

// Max / sum over the 4 lanes that hold one row of a C fragment (lanes differing in bits 0..1).
__device__ __forceinline__ float quad_max(float v) {
    v = fmaxf(v, warp_shfl_xor(v, 1));
    return fmaxf(v, warp_shfl_xor(v, 2));
}
__device__ __forceinline__ float quad_sum(float v) {
    v += warp_shfl_xor(v, 1);
    return v + warp_shfl_xor(v, 2);
}

}  // namespace attention_tc_tiles

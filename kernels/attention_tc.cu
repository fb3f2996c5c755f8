// attention_tc.cu — attention forward and backward on bf16 tensor cores (mma.sync m16n8k16, fp32 accumulation),
// FlashAttention-2 style, for head sizes 64 and 128. Same semantics, parameters and outputs as attention.cu's kernels
// (causal, T5 relative bias from table + bucket_by_offset, per-row key lengths, row strides, scale, Tq ≠ Tk; lse and
// the backward's dsum as there); the launchers (src/SoftPrompt/Cuda/Kernels/Attention.cs) pick these kernels when the
// engine runs in bf16 precision (bf16 spans) and hs ∈ {64, 128}. Tests (tests/SoftPrompt.Tests/Kernels/):
// T5KernelAttentionTests.TensorCores.cs, GroupedQueryTensorCoreAttentionTests.cs, Bf16StorageAttentionTests.cs.
//
// Storage: q, k, v and out are bf16 in memory (what the engines keep in bf16 precision: q, k, v straight from bf16 GEMM
// outputs, out written bf16 — rounded once from the fp32 accumulator — for the output projection's bf16 GEMM and saved
// for the backward). lse, dsum, dout and dq, dk, dv are fp32 (the gradients are summed over shared prompt rows
// afterwards). fp32 q/k/v run attention.cu's SIMT kernels; attention.cu also has bf16-storage kernels
// (attention_*_bf16_hsNN) for the other head sizes, so an engine has one bf16 path whatever its head size.
// Precision: dout (in the backward) becomes bf16 (RNE) when staged into shared memory (q, k, v already are); P (and
// dS in the backward) are rounded to bf16 as mma operands; every product is accumulated in fp32, and
// scale, bias, masks, softmax (running max / sum), lse and D = rowsum(dout ∘ out) are fp32. The scale multiplies the
// fp32 scores (not q), so any scale costs no extra rounding.
//
// Layout: a block is 4 warps; each warp owns 16 consecutive rows of the block's 64-row "outer" tile (query rows in the
// forward and dq kernels, key rows in the dkv kernel) and keeps their accumulators in mma C fragments. The "inner"
// operands (K and V, or Q and dO) stream through shared memory in tiles of BC rows: while the warps multiply tile j
// (bf16), cp.async brings tile j + 1 (bf16; dO fp32) into a landing buffer, which is copied (dO rounded) into
// the bf16 tiles at the top of the next iteration (attention_tc_tiles::stage_rows / land_rows in attention_common.cuh).
// The outer bf16 tiles (Q, or K and V) are copied by cp.async straight into their tiles in the same group as the first
// streamed tile (stage_tile), so their loads overlap the first tile's and, in the dq kernel, the D prologue. Score tiles never leave the
// registers: the C fragments of S become the A fragments of P·V (c_to_a). Grouped-query K/V are read in place
// (Args::kv_head); the dkv kernel sums a kv head's gradient over its group inside the block (no repeated K/V, no atomics). The bias of a score tile is looked up once
// per tile into the BR + BC − 1 diagonals it crosses (load_bias), as in attention.cu. Deterministic: no atomics.
#include "common.cuh"
#include "kernel_helpers.cuh"
#include "attention_common.cuh"

namespace attention_tc_detail {

using namespace attention_common;
using namespace attention_tc_tiles;

constexpr int BR = 64;  // outer rows per block: 4 warps × 16

// bf16 elements per 16-byte cp.async chunk: hs and every row stride must be multiples of it for the vector path (the
// fp32 dout, dq, dk, dv then are too).
constexpr int kVec = 16 / static_cast<int>(sizeof(bf16));

// Key (forward, dq) or query (dkv) rows per streamed tile: 64 at D = 64; 32 at D = 128, which keeps the fp32 landing
// buffers and the registers of the D = 128 accumulators in bounds.
template <int D> constexpr int kInner = D == 64 ? 64 : 32;

// Shared memory. Forward and dq: four bf16 tiles (sQ, sdO — unused by the forward —, sK, sV), the landing buffer of
// two bf16 inner tiles (K and V) and the bias diagonals. dkv: four bf16 tiles, the landing buffer of two inner tiles
// sized for fp32 (the streamed dout is fp32; Q uses half of its slot), the bias diagonals and two per-query vectors
// (lse and D). The launcher computes the same sizes (AttentionTensorCores.QuerySharedBytes / KeySharedBytes).
template <int D>
constexpr int query_shared_bytes() {
    constexpr int BC = kInner<D>, LD = D + 8;
    return 2 * (2 * BR * LD + 2 * BC * LD) + 2 * (2 * BC * D) + 4 * (BR + BC);
}
template <int D>
constexpr int key_shared_bytes() {
    constexpr int BC = kInner<D>, LD = D + 8;
    return 2 * (2 * BR * LD + 2 * BC * LD) + 4 * (2 * BC * D + BR + BC + 2 * BR);
}
static_assert(query_shared_bytes<64>() == 53760 && query_shared_bytes<128>() == 68992, "the header comment and the launcher");
static_assert(key_shared_bytes<64>() == 70656 && key_shared_bytes<128>() == 85888, "the header comment and the launcher");

// The score s of C-fragment element e (0..3) of column block n, for the tile's row r and column c (tile-local), with
// scale and bias; −∞ when `masked`.
__device__ __forceinline__ int frag_row(int e) { return static_cast<int>(lane_id() >> 2) + 8 * (e >> 1); }
__device__ __forceinline__ int frag_col(int n, int e) { return 8 * n + 2 * static_cast<int>(lane_id() & 3) + (e & 1); }

// ── forward ──
// Block: query rows [q0, q0 + 64) of head (b, h); key tiles of BC rows up to the key length (and the diagonal).
// Shared: sQ [64][D+8], (unused [64][D+8]), sK, sV [BC][D+8] bf16; landing [2][BC][D] bf16; sB [64 + BC − 1].
template <int D>
__device__ __forceinline__ void forward(bf16* __restrict__ out, int out_stride, float* __restrict__ lse, const Args<bf16> a) {
    constexpr int BC = kInner<D>, LD = D + 8;
    bf16* sQ = dynamic_smem<bf16>();
    bf16* sK = sQ + 2 * BR * LD;  // (the dq kernel's sdO slot stays unused here)
    bf16* sV = sK + BC * LD;
    bf16* slot_k = sV + BC * LD;  // the landing buffer: two bf16 slots
    bf16* slot_v = slot_k + BC * D;
    float* sB = reinterpret_cast<float*>(slot_v + BC * D);
    const int warp = static_cast<int>(warp_id()), r0 = 16 * warp;
    const int hs = a.hs, bh = static_cast<int>(blockIdx.y), b = bh / a.H, h = bh - b * a.H;
    const int q0 = (static_cast<int>(gridDim.x) - 1 - static_cast<int>(blockIdx.x)) * BR;  // longest rows first
    const int keys = key_limit(a.key_lengths, b, a.Tk), rows = min(BR, a.Tq - q0);
    const bool vec = vector_ok<kVec>(hs | a.q_stride | a.k_stride | a.v_stride | out_stride, a.q, a.k, a.v, out);
    const long long q_rows = static_cast<long long>(b) * a.Tq + q0;  // row (b, q0) of q / out
    const int hk = a.kv_head(h);  // grouped-query attention: the group's kv head, read in place
    const bf16* kh = a.k + static_cast<long long>(b) * a.Tk * a.k_stride + hk * hs;
    const bf16* vh = a.v + static_cast<long long>(b) * a.Tk * a.v_stride + hk * hs;
    const int key_end = a.causal ? min(keys, q0 + BR) : keys;  // keys 0 .. key_end − 1 are visible to some row
    const int tiles = ceil_div(key_end, BC);

    stage_tile<BR, D, LD>(sQ, a.q + q_rows * a.q_stride + h * hs, a.q_stride, rows, vec);  // ready with K/V tile 0
    stage_rows<BC, D>(slot_k, kh, a.k_stride, min(BC, keys), vec);
    stage_rows<BC, D>(slot_v, vh, a.v_stride, min(BC, keys), vec);
    cp_async_commit();

    float o[D / 8][4] = {}, m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};  // l: this lane's part of the row sums
    for (int j = 0; j < tiles; ++j) {
        const int k0 = j * BC, valid = min(BC, keys - k0);
        cp_async_wait<0>();
        __syncthreads();  // tile j has landed, and every warp is done with tile j − 1's sK, sV, sB
        land_rows<BC, D, LD>(sK, slot_k, valid);
        land_rows<BC, D, LD>(sV, slot_v, valid);
        load_bias<BR, BC>(sB, a.table, a.bucket_by_offset, q0, k0, a.Tq, a.Tk, a.H, h);
        __syncthreads();  // the bf16 tiles are ready and the landing buffer is free
        if (j + 1 < tiles) {
            const int next = k0 + BC;
            stage_rows<BC, D>(slot_k, kh + static_cast<long long>(next) * a.k_stride, a.k_stride, min(BC, keys - next), vec);
            stage_rows<BC, D>(slot_v, vh + static_cast<long long>(next) * a.v_stride, a.v_stride, min(BC, keys - next), vec);
        }
        cp_async_commit();

        float s[BC / 8][4] = {};
        warp_mma_nt<BC, D>(s, sQ, LD, r0, sK, LD);
        // Only tiles crossing the key length or the diagonal need masks. Key tile 0 holds key 0, visible to every row
        // (key length ≥ 1, 0 ≤ row), so m is finite from the first tile on.
        const bool edge = k0 + BC > keys || (a.causal && k0 + BC - 1 > q0 + r0);
        float mx[2] = {-INFINITY, -INFINITY};
#pragma unroll
        for (int n = 0; n < BC / 8; ++n)
#pragma unroll
            for (int e = 0; e < 4; ++e) {
                const int r = r0 + frag_row(e), c = frag_col(n, e);
                float x = fmaf(s[n][e], a.scale, sB[c - r + BR - 1]);
                if (edge && (k0 + c >= keys || (a.causal && k0 + c > q0 + r))) x = -INFINITY;
                s[n][e] = x;
                mx[e >> 1] = fmaxf(mx[e >> 1], x);
            }
        float alpha[2], mc[2];
#pragma unroll
        for (int i = 0; i < 2; ++i) {
            const float m_new = fmaxf(m[i], quad_max(mx[i]));
            alpha[i] = exp2f((m[i] - m_new) * kLog2e);  // 0 on the first tile (m = −∞)
            mc[i] = m_new * kLog2e;
            m[i] = m_new;
            l[i] *= alpha[i];
        }
#pragma unroll
        for (int n = 0; n < BC / 8; ++n)
#pragma unroll
            for (int e = 0; e < 4; ++e) {
                const float p = exp2f(fmaf(s[n][e], kLog2e, -mc[e >> 1]));
                s[n][e] = p;
                l[e >> 1] += p;
            }
#pragma unroll
        for (int n = 0; n < D / 8; ++n)
#pragma unroll
            for (int e = 0; e < 4; ++e) o[n][e] *= alpha[e >> 1];
        warp_mma_cn<D, BC>(o, s, sV, LD);
    }
    cp_async_wait_all();  // nothing is in flight (the last group is empty), but leave no copy behind

    const float sum_lo = quad_sum(l[0]), sum_hi = quad_sum(l[1]);
    store_c_rows<D>(out + q_rows * out_stride + h * hs, out_stride, o, r0, rows, 1.0f / sum_lo, 1.0f / sum_hi, vec);
    if ((lane_id() & 3) == 0) {
        const int r = r0 + static_cast<int>(lane_id() >> 2);
        float* row_lse = lse + static_cast<long long>(bh) * a.Tq + q0;
        if (r < rows) row_lse[r] = m[0] + logf(sum_lo);
        if (r + 8 < rows) row_lse[r + 8] = m[1] + logf(sum_hi);
    }
}

// The dq kernel's prologue for the warp's rows [r0, r0 + 16) of the block (query rows q0 + r): D = rowsum(dout ∘ out)
// in fp32, written to dsum, and dout rounded to bf16 (RNE) into rows r of sdO (zeros, and D = lse = 0, for r ≥ rows).
// Two lanes per row (lane 2x + half: row r0 + x), each loading 8-column chunks (i & 3) + 4·half + 8·(i >> 2),
// i < D / 16 (the chunks of one store instruction fall in 8 different bank groups), 4 chunks of loads in flight, then
// one shuffle joins the halves: the 16 rows run side by side instead of 16 dependent load-and-reduce chains. Returns
// D and lse of this lane's mma fragment rows r0 + lane / 4 (lo) and r0 + lane / 4 + 8 (hi).
template <int D, int LD>
__device__ __forceinline__ void dout_rows(bf16* __restrict__ sdO, float& d_lo, float& d_hi, float& lse_lo, float& lse_hi,
                                          float* __restrict__ dsum, const float* __restrict__ dout, int dout_stride,
                                          const bf16* __restrict__ out, int out_stride, const float* __restrict__ lse, int Tq,
                                          int bh, long long q_rows, int q0, int r0, int rows, int column0) {
    const int lane = static_cast<int>(lane_id()), half = lane & 1, r = r0 + (lane >> 1);
    const bool live = r < rows;
    const bool vec = vector_ok<kVec>(dout_stride | out_stride | column0, dout, out);
    const float* d_row = dout + (q_rows + r) * dout_stride + column0;  // dereferenced only when live
    const bf16* o_row = out + (q_rows + r) * out_stride + column0;
    float sum = 0.0f;
#pragma unroll
    for (int i0 = 0; i0 < D / 16; i0 += 4) {
        float dv[4][8] = {}, ov[4][8] = {};
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            const int c = 8 * (i + 4 * half + 2 * i0);  // chunk (i0 + i) & 3 = i, 8·(i0 >> 2) = 2·i0
            if (!live) continue;
            if (vec) {
                load_vec<4>(*reinterpret_cast<float(*)[4]>(dv[i]), d_row + c);
                load_vec<4>(*reinterpret_cast<float(*)[4]>(dv[i] + 4), d_row + c + 4);
                load_vec<4>(*reinterpret_cast<float(*)[4]>(ov[i]), o_row + c);
                load_vec<4>(*reinterpret_cast<float(*)[4]>(ov[i] + 4), o_row + c + 4);
            } else {
#pragma unroll
                for (int e = 0; e < 8; ++e) {
                    dv[i][e] = d_row[c + e];
                    ov[i][e] = load_value(o_row + c + e);
                }
            }
        }
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            const int c = 8 * (i + 4 * half + 2 * i0);
#pragma unroll
            for (int e = 0; e < 8; ++e) sum = fmaf(dv[i][e], ov[i][e], sum);
            *reinterpret_cast<uint4*>(sdO + r * LD + c) = make_uint4(pack_bf16x2(dv[i][0], dv[i][1]), pack_bf16x2(dv[i][2], dv[i][3]),
                                                                     pack_bf16x2(dv[i][4], dv[i][5]), pack_bf16x2(dv[i][6], dv[i][7]));
        }
    }
    sum += warp_shfl_xor(sum, 1);  // both lanes of the row get the same sum (addition commutes exactly)
    const long long at = static_cast<long long>(bh) * Tq + q0 + r;
    const float row_lse = live ? ldg(lse + at) : 0.0f;
    if (live && half == 0) dsum[at] = sum;
    const int g = lane >> 2;  // fragment rows r0 + g and r0 + g + 8 belong to lanes 2g and 2g + 16
    d_lo = warp_shfl(sum, 2 * g);
    d_hi = warp_shfl(sum, 2 * g + 16);
    lse_lo = warp_shfl(row_lse, 2 * g);
    lse_hi = warp_shfl(row_lse, 2 * g + 16);
}

// ── backward, step 1: dQ and D = rowsum(dout ∘ out) ──
// Block: query rows [q0, q0 + 64) of head (b, h); key tiles of BC rows as the forward. P = exp(s − lse) and
// dP = dO·Vᵀ recomputed per tile, dS = P ∘ (dP − D), dq += dS·K; dq = scale·dq at the end.
// Shared: sQ, sdO [64][D+8], sK, sV [BC][D+8] bf16; landing [2][BC][D] bf16; sB [64 + BC − 1].
template <int D>
__device__ __forceinline__ void backward_dq(float* __restrict__ dq, int dq_stride, float* __restrict__ dsum, const float* __restrict__ dout,
                                            int dout_stride, const bf16* __restrict__ out, int out_stride, const float* __restrict__ lse,
                                            const Args<bf16> a) {
    constexpr int BC = kInner<D>, LD = D + 8;
    bf16* sQ = dynamic_smem<bf16>();
    bf16* sdO = sQ + BR * LD;
    bf16* sK = sdO + BR * LD;
    bf16* sV = sK + BC * LD;
    bf16* slot_k = sV + BC * LD;  // the landing buffer: two bf16 slots
    bf16* slot_v = slot_k + BC * D;
    float* sB = reinterpret_cast<float*>(slot_v + BC * D);
    const int warp = static_cast<int>(warp_id()), r0 = 16 * warp;
    const int hs = a.hs, bh = static_cast<int>(blockIdx.y), b = bh / a.H, h = bh - b * a.H;
    const int q0 = (static_cast<int>(gridDim.x) - 1 - static_cast<int>(blockIdx.x)) * BR;
    const int keys = key_limit(a.key_lengths, b, a.Tk), rows = min(BR, a.Tq - q0);
    const bool vec = vector_ok<kVec>(hs | a.q_stride | a.k_stride | a.v_stride | dq_stride | dout_stride, a.q, a.k, a.v, dq, dout);
    const long long q_rows = static_cast<long long>(b) * a.Tq + q0;
    const int hk = a.kv_head(h);  // grouped-query attention: the group's kv head, read in place
    const bf16* kh = a.k + static_cast<long long>(b) * a.Tk * a.k_stride + hk * hs;
    const bf16* vh = a.v + static_cast<long long>(b) * a.Tk * a.v_stride + hk * hs;
    const int key_end = a.causal ? min(keys, q0 + BR) : keys;
    const int tiles = ceil_div(key_end, BC);

    stage_tile<BR, D, LD>(sQ, a.q + q_rows * a.q_stride + h * hs, a.q_stride, rows, vec);  // ready with K/V tile 0
    stage_rows<BC, D>(slot_k, kh, a.k_stride, min(BC, keys), vec);
    stage_rows<BC, D>(slot_v, vh, a.v_stride, min(BC, keys), vec);
    cp_async_commit();

    // While those land: D_i = dout_i · out_i in fp32 (saved for the dK/dV kernel) and the bf16 sdO, each warp its own
    // 16 rows (the only ones it reads), from one pass over dout.
    float d_lo, d_hi, lse_lo, lse_hi;
    dout_rows<D, LD>(sdO, d_lo, d_hi, lse_lo, lse_hi, dsum, dout, dout_stride, out, out_stride, lse, a.Tq, bh, q_rows, q0, r0, rows, h * hs);

    const float lse2[2] = {lse_lo * kLog2e, lse_hi * kLog2e}, d_row[2] = {d_lo, d_hi};
    float acc[D / 8][4] = {};
    for (int j = 0; j < tiles; ++j) {
        const int k0 = j * BC, valid = min(BC, keys - k0);
        cp_async_wait<0>();
        __syncthreads();
        land_rows<BC, D, LD>(sK, slot_k, valid);
        land_rows<BC, D, LD>(sV, slot_v, valid);
        load_bias<BR, BC>(sB, a.table, a.bucket_by_offset, q0, k0, a.Tq, a.Tk, a.H, h);
        __syncthreads();
        if (j + 1 < tiles) {
            const int next = k0 + BC;
            stage_rows<BC, D>(slot_k, kh + static_cast<long long>(next) * a.k_stride, a.k_stride, min(BC, keys - next), vec);
            stage_rows<BC, D>(slot_v, vh + static_cast<long long>(next) * a.v_stride, a.v_stride, min(BC, keys - next), vec);
        }
        cp_async_commit();

        float s[BC / 8][4] = {}, dp[BC / 8][4] = {};
        warp_mma_nt<BC, D>(s, sQ, LD, r0, sK, LD);
        warp_mma_nt<BC, D>(dp, sdO, LD, r0, sV, LD);
        const bool edge = k0 + BC > keys || (a.causal && k0 + BC - 1 > q0 + r0) || r0 + 16 > rows;
#pragma unroll
        for (int n = 0; n < BC / 8; ++n)
#pragma unroll
            for (int e = 0; e < 4; ++e) {
                const int r = r0 + frag_row(e), c = frag_col(n, e);
                const float x = fmaf(s[n][e], a.scale, sB[c - r + BR - 1]);
                float p = exp2f(fmaf(x, kLog2e, -lse2[e >> 1]));
                // Masked: a select, so that an overflowing exp of a padding row cannot turn into NaN below.
                if (edge && (r >= rows || k0 + c >= keys || (a.causal && k0 + c > q0 + r))) p = 0.0f;
                s[n][e] = p * (dp[n][e] - d_row[e >> 1]);  // dS
            }
        warp_mma_cn<D, BC>(acc, s, sK, LD);
    }
    cp_async_wait_all();
    store_c_rows<D>(dq + q_rows * dq_stride + h * hs, dq_stride, acc, r0, rows, a.scale, a.scale, vec);
}

// ── backward, step 2: dK and dV (after the dq kernel wrote D) ──
// Block: key rows [k0, k0 + 64) of kv head (b, hk); for each query head h of its group (H / Hkv heads from hk·H / Hkv,
// in increasing h: a fixed order, so the group's sum is deterministic without atomics; one head when Hkv = H), query
// tiles of BC rows from the first one holding a query ≥ k0 (causal) or 0, to Tq. Sᵀ = K·Qᵀ and dPᵀ = V·dOᵀ per tile,
// Pᵀ = exp(Sᵀ − lse), dSᵀ = Pᵀ ∘ (dPᵀ − D); dv += Pᵀ·dO, dk += dSᵀ·Q, summed in the fp32 accumulators over every
// tile of every head of the group; dk = scale·dk at the end. Keys at or past the key length, and keys no query sees, get 0.
// Shared: sK, sV [64][D+8], sQ, sdO [BC][D+8] bf16; landing [2][BC][D] fp32; sB [BC + 64 − 1]; sL, sD [BC].
template <int D>
__device__ __forceinline__ void backward_dkv(float* __restrict__ dk, int dk_stride, float* __restrict__ dv, int dv_stride,
                                             const float* __restrict__ dout, int dout_stride, const float* __restrict__ lse,
                                             const float* __restrict__ dsum, const Args<bf16> a) {
    constexpr int BC = kInner<D>, LD = D + 8;
    bf16* sK = dynamic_smem<bf16>();
    bf16* sV = sK + BR * LD;
    bf16* sQ = sV + BR * LD;
    bf16* sdO = sQ + BC * LD;
    float* landing = reinterpret_cast<float*>(sdO + BC * LD);
    float* sB = landing + 2 * BC * D;
    float* sL = sB + BR + BC;
    float* sD = sL + BR;
    const int warp = static_cast<int>(warp_id()), r0 = 16 * warp;
    const int hs = a.hs, bkv = static_cast<int>(blockIdx.y), b = bkv / a.Hkv, hk = bkv - b * a.Hkv, group = a.H / a.Hkv;
    const int k0 = static_cast<int>(blockIdx.x) * BR;
    const int keys = key_limit(a.key_lengths, b, a.Tk), rows = min(BR, a.Tk - k0), valid = max(0, min(BR, keys - k0));
    const bool vec = vector_ok<kVec>(hs | a.q_stride | a.k_stride | a.v_stride | dk_stride | dv_stride | dout_stride, a.q, a.k, a.v, dk, dv, dout);
    const long long k_rows = static_cast<long long>(b) * a.Tk + k0;
    const bf16* q_b = a.q + static_cast<long long>(b) * a.Tq * a.q_stride;
    const float* do_b = dout + static_cast<long long>(b) * a.Tq * dout_stride;
    const int q_begin = valid == 0 ? a.Tq : a.causal ? k0 / BC * BC : 0;  // no visible key: no query tile
    const int head_tiles = ceil_div(a.Tq - q_begin, BC), tiles = group * head_tiles;
    // Streamed tile j: query head h0 + j / head_tiles, query rows from q_begin + (j % head_tiles)·BC.
    const int h0 = hk * group;
    auto stage_query_tile = [&](int j) {
        const int h = h0 + j / head_tiles, qt = q_begin + (j % head_tiles) * BC;
        stage_rows<BC, D>(reinterpret_cast<bf16*>(landing), q_b + static_cast<long long>(qt) * a.q_stride + h * hs, a.q_stride, min(BC, a.Tq - qt), vec);
        stage_rows<BC, D>(landing + BC * D, do_b + static_cast<long long>(qt) * dout_stride + h * hs, dout_stride, min(BC, a.Tq - qt), vec);
    };

    stage_tile<BR, D, LD>(sK, a.k + k_rows * a.k_stride + hk * hs, a.k_stride, valid, vec);  // ready with query tile 0
    stage_tile<BR, D, LD>(sV, a.v + k_rows * a.v_stride + hk * hs, a.v_stride, valid, vec);
    if (tiles > 0) stage_query_tile(0);
    cp_async_commit();

    float acc_k[D / 8][4] = {}, acc_v[D / 8][4] = {};
    for (int j = 0; j < tiles; ++j) {
        const int h = h0 + j / head_tiles, qt = q_begin + (j % head_tiles) * BC, queries = min(BC, a.Tq - qt);
        const long long bh = static_cast<long long>(b) * a.H + h;
        cp_async_wait<0>();
        __syncthreads();
        land_rows<BC, D, LD>(sQ, reinterpret_cast<const bf16*>(landing), queries);
        land_rows<BC, D, LD>(sdO, landing + BC * D, queries);
        load_bias<BC, BR>(sB, a.table, a.bucket_by_offset, qt, k0, a.Tq, a.Tk, a.H, h);  // query qt + c, key k0 + r
        for (int c = static_cast<int>(threadIdx.x); c < BC; c += kThreads) {
            sL[c] = c < queries ? lse[bh * a.Tq + qt + c] * kLog2e : 0.0f;
            sD[c] = c < queries ? dsum[bh * a.Tq + qt + c] : 0.0f;
        }
        __syncthreads();
        if (j + 1 < tiles) stage_query_tile(j + 1);
        cp_async_commit();

        float s[BC / 8][4] = {}, dp[BC / 8][4] = {};  // transposed: rows are keys, columns queries
        warp_mma_nt<BC, D>(s, sK, LD, r0, sQ, LD);
        warp_mma_nt<BC, D>(dp, sV, LD, r0, sdO, LD);
        const bool edge = qt + BC > a.Tq || r0 + 16 > valid || (a.causal && k0 + r0 + 15 > qt);
        float ds[BC / 8][4];
#pragma unroll
        for (int n = 0; n < BC / 8; ++n)
#pragma unroll
            for (int e = 0; e < 4; ++e) {
                const int r = r0 + frag_row(e), c = frag_col(n, e);  // key k0 + r, query qt + c
                const float x = fmaf(s[n][e], a.scale, sB[r - c + BC - 1]);
                float p = exp2f(fmaf(x, kLog2e, -sL[c]));
                if (edge && (c >= queries || r >= valid || (a.causal && qt + c < k0 + r))) p = 0.0f;
                s[n][e] = p;
                ds[n][e] = p * (dp[n][e] - sD[c]);
            }
        warp_mma_cn<D, BC>(acc_v, s, sdO, LD);
        warp_mma_cn<D, BC>(acc_k, ds, sQ, LD);
    }
    cp_async_wait_all();
    store_c_rows<D>(dk + k_rows * dk_stride + hk * hs, dk_stride, acc_k, r0, rows, a.scale, a.scale, vec);
    store_c_rows<D>(dv + k_rows * dv_stride + hk * hs, dv_stride, acc_v, r0, rows, 1.0f, 1.0f, vec);
}

}  // namespace attention_tc_detail

// Every kernel takes the parameters of its attention.cu counterpart (same names, order and meaning; see there) plus Hkv,
// the key/value heads (grouped-query attention: H a multiple of Hkv; Hkv = H for ordinary multi-head attention): k, v,
// dk and dv hold Hkv heads per row (query head h reads kv head h / (H / Hkv) in place, never repeated in memory), q, out,
// dout, dq, lse and dsum hold H. Each requires hs = 64 (the _hs64 entry) or hs = 128 (_hs128). Block: 128 threads (4 warps × 16 rows of a 64-row
// tile). Dynamic shared memory, with BC = 64 at D = 64 and 32 at D = 128 (more than the default 48 KB, which
// CudaDevice opts into per kernel): forward and dq 2·(2·64·(D+8) + 2·BC·(D+8)) + 2·2·BC·D + 4·(64 + BC) bytes =
// 53,760 / 68,992 (attention_tc_detail::query_shared_bytes<D>); dkv 2·(2·64·(D+8) + 2·BC·(D+8)) + 4·(2·BC·D + 3·64 + BC)
// = 70,656 / 85,888 (key_shared_bytes<D>).

// attention_tc_forward_bf16_hs{64,128} — out [B, Tq, ·] (bf16) and lse [B, H, Tq] as attention_forward_bf16_hs*.
//   Grid: (ceil(Tq / 64), B·H); block x handles query rows [q0, q0 + 64), q0 = (gridDim.x − 1 − x)·64, of head
//   blockIdx.y = b·H + h, over key tiles of BC rows up to the key length (and the diagonal when causal).
extern "C" __global__ void __launch_bounds__(128, 2) attention_tc_forward_bf16_hs64(bf16* __restrict__ out, float* __restrict__ lse, const bf16* __restrict__ q, const bf16* __restrict__ k, const bf16* __restrict__ v, const float* __restrict__ table, const int* __restrict__ bucket_by_offset, const int* __restrict__ key_lengths, int out_stride, int q_stride, int k_stride, int v_stride, int Tq, int Tk, int H, int Hkv, int hs, int causal, float scale) {
    using namespace attention_tc_detail;
    assert(hs == 64);
    forward<64>(out, out_stride, lse, inputs(q, k, v, table, bucket_by_offset, key_lengths, q_stride, k_stride, v_stride, Tq, Tk, H, hs, causal, scale, Hkv));
}
extern "C" __global__ void __launch_bounds__(128, 2) attention_tc_forward_bf16_hs128(bf16* __restrict__ out, float* __restrict__ lse, const bf16* __restrict__ q, const bf16* __restrict__ k, const bf16* __restrict__ v, const float* __restrict__ table, const int* __restrict__ bucket_by_offset, const int* __restrict__ key_lengths, int out_stride, int q_stride, int k_stride, int v_stride, int Tq, int Tk, int H, int Hkv, int hs, int causal, float scale) {
    using namespace attention_tc_detail;
    assert(hs == 128);
    forward<128>(out, out_stride, lse, inputs(q, k, v, table, bucket_by_offset, key_lengths, q_stride, k_stride, v_stride, Tq, Tk, H, hs, causal, scale, Hkv));
}

// attention_tc_backward_dq_bf16_hs{64,128} — dq and dsum (D = rowsum(dout ∘ out)) as attention_backward_dq_bf16_hs*.
//   Grid: (ceil(Tq / 64), B·H); block x handles query rows [q0, q0 + 64), q0 = (gridDim.x − 1 − x)·64.
extern "C" __global__ void __launch_bounds__(128, 2) attention_tc_backward_dq_bf16_hs64(float* __restrict__ dq, float* __restrict__ dk, float* __restrict__ dv, float* __restrict__ dsum, const float* __restrict__ dout, const bf16* __restrict__ out, const float* __restrict__ lse, const bf16* __restrict__ q, const bf16* __restrict__ k, const bf16* __restrict__ v, const float* __restrict__ table, const int* __restrict__ bucket_by_offset, const int* __restrict__ key_lengths, int dq_stride, int dk_stride, int dv_stride, int dout_stride, int out_stride, int q_stride, int k_stride, int v_stride, int Tq, int Tk, int H, int Hkv, int hs, int causal, float scale) {
    using namespace attention_tc_detail;
    assert(hs == 64);
    backward_dq<64>(dq, dq_stride, dsum, dout, dout_stride, out, out_stride, lse, inputs(q, k, v, table, bucket_by_offset, key_lengths, q_stride, k_stride, v_stride, Tq, Tk, H, hs, causal, scale, Hkv));
}
extern "C" __global__ void __launch_bounds__(128, 2) attention_tc_backward_dq_bf16_hs128(float* __restrict__ dq, float* __restrict__ dk, float* __restrict__ dv, float* __restrict__ dsum, const float* __restrict__ dout, const bf16* __restrict__ out, const float* __restrict__ lse, const bf16* __restrict__ q, const bf16* __restrict__ k, const bf16* __restrict__ v, const float* __restrict__ table, const int* __restrict__ bucket_by_offset, const int* __restrict__ key_lengths, int dq_stride, int dk_stride, int dv_stride, int dout_stride, int out_stride, int q_stride, int k_stride, int v_stride, int Tq, int Tk, int H, int Hkv, int hs, int causal, float scale) {
    using namespace attention_tc_detail;
    assert(hs == 128);
    backward_dq<128>(dq, dq_stride, dsum, dout, dout_stride, out, out_stride, lse, inputs(q, k, v, table, bucket_by_offset, key_lengths, q_stride, k_stride, v_stride, Tq, Tk, H, hs, causal, scale, Hkv));
}

// attention_tc_backward_dkv_bf16_hs{64,128} — dk and dv as attention_backward_dkv_bf16_hs* (after the dq kernel's dsum), each kv
//   head's summed over its group's query heads inside the block, in increasing head order.
//   Grid: (ceil(Tk / 64), B·Hkv); block x handles key rows [64x, 64x + 64) of kv head blockIdx.y = b·Hkv + hk, over
//   the query tiles of BC rows of each of its group's heads.
extern "C" __global__ void __launch_bounds__(128, 1) attention_tc_backward_dkv_bf16_hs64(float* __restrict__ dq, float* __restrict__ dk, float* __restrict__ dv, float* __restrict__ dsum, const float* __restrict__ dout, const bf16* __restrict__ out, const float* __restrict__ lse, const bf16* __restrict__ q, const bf16* __restrict__ k, const bf16* __restrict__ v, const float* __restrict__ table, const int* __restrict__ bucket_by_offset, const int* __restrict__ key_lengths, int dq_stride, int dk_stride, int dv_stride, int dout_stride, int out_stride, int q_stride, int k_stride, int v_stride, int Tq, int Tk, int H, int Hkv, int hs, int causal, float scale) {
    using namespace attention_tc_detail;
    assert(hs == 64);
    backward_dkv<64>(dk, dk_stride, dv, dv_stride, dout, dout_stride, lse, dsum, inputs(q, k, v, table, bucket_by_offset, key_lengths, q_stride, k_stride, v_stride, Tq, Tk, H, hs, causal, scale, Hkv));
}
extern "C" __global__ void __launch_bounds__(128, 1) attention_tc_backward_dkv_bf16_hs128(float* __restrict__ dq, float* __restrict__ dk, float* __restrict__ dv, float* __restrict__ dsum, const float* __restrict__ dout, const bf16* __restrict__ out, const float* __restrict__ lse, const bf16* __restrict__ q, const bf16* __restrict__ k, const bf16* __restrict__ v, const float* __restrict__ table, const int* __restrict__ bucket_by_offset, const int* __restrict__ key_lengths, int dq_stride, int dk_stride, int dv_stride, int dout_stride, int out_stride, int q_stride, int k_stride, int v_stride, int Tq, int Tk, int H, int Hkv, int hs, int causal, float scale) {
    using namespace attention_tc_detail;
    assert(hs == 128);
    backward_dkv<128>(dk, dk_stride, dv, dv_stride, dout, dout_stride, lse, dsum, inputs(q, k, v, table, bucket_by_offset, key_lengths, q_stride, k_stride, v_stride, Tq, Tk, H, hs, causal, scale, Hkv));
}

// attention.cu — multi-head attention, forward and backward, FlashAttention-2 style in fp32 SIMT. One kernel family for
// every model: GPT-2 (causal, scale 1/√hs, q/k/v column slices of one fused qkv buffer), T5 (an additive
// relative-position bias looked up on the fly, no scale, per-row key lengths, causal or not, cross-attention with
// Tq ≠ Tk) and Llama (causal, no bias; the engine folds 1/√hd into RoPE and passes scale 1). Input gradients only.
// CPU references: src/SoftPrompt/Cpu/BiasedAttentionOps.cs (+ RelativePositionOps.Bias), and AttentionOps.cs for
// GPT-2's fused layout. Launchers: src/SoftPrompt/Cuda/Kernels/Attention.cs. Tests:
// tests/SoftPrompt.Tests/Kernels/AttentionKernelTests.cs (GPT-2 cases) and T5KernelAttentionTests.cs (the rest).
// The bf16 tensor-core variant for hs 64 / 128 (same parameters and semantics, bf16 in memory only): attention_tc.cu; shared helpers:
// attention_common.cuh. Every kernel also comes with q, k, v and out bf16 in memory (attention_*_bf16_hsNN, same
// parameters otherwise): bf16 precision at the head sizes without tensor-core kernels; values widened exactly on load,
// out rounded to nearest even on store, the arithmetic as in fp32.
//
// Layouts (A = H·hs; head h uses columns h·hs .. h·hs + hs − 1 of a row; every [rows, ·] tensor has its own row
// stride ≥ A, so a tensor may be a column slice of a wider buffer — e.g. GPT-2's qkv [B·T, 3C] read as q, k, v at
// columns 0, C, 2C with stride 3C, and its gradient dqkv written the same way):
//   q      [B, Tq, ·] q_stride;  k, v [B, Tk, ·] k_stride, v_stride
//   out    [B, Tq, ·] out_stride   out_i = Σ_j softmax_j(s_ij) v_j over the visible keys j
//   lse    [B, H, Tq]  lse_i = log Σ_j exp(s_ij) (natural log; all the backward needs)
//   s_ij = scale·(q_i·k_j) + table[bucket_by_offset[j − i + Tq − 1]·H + h]   (table [numBuckets, H] = HF's
//          relative_attention_bias.weight; bucket_by_offset [Tq + Tk − 1]; both null = no bias)
//   visible: j < key_lengths[b] (key_lengths [B], each in [1, Tk], or null = all Tk keys) and, when causal, j ≤ i.
//   dq [B, Tq, ·] dq_stride, dk and dv [B, Tk, ·] dk_stride, dv_stride: backward outputs, every element of their
//   A columns written (keys no query sees get 0); dout [B, Tq, ·] dout_stride.
// Row offsets are 64-bit everywhere (row · stride can pass 2^31 at long sequences and wide strides).
//
// The scale is applied once, when a q tile is loaded into shared memory (the tile holds scale·q): the score loop is the
// same with and without it, scale = 1 is exact (T5, Llama), and so is a power of two (GPT-2 at hs 64). The backward
// then has dq = scale·Σ_j dS_ij k_j and dk_j = Σ_i dS_ij (scale·q_i).
//
// Every kernel is a template over the head size padded to D ∈ {16, 32, 64, 128} (columns hs..D−1 of a tile are zero in
// shared memory, so any hs in 1..128 works), instantiated once per D as an extern "C" entry; the launcher picks D and
// the tile sizes. No Tq×Tk matrix ever reaches global memory: the forward keeps a running max / sum per row (online
// softmax) and saves lse; the backward recomputes P = exp(s − lse). The backward is deterministic: no atomics; each
// output element is summed by one thread in a fixed order.
//
// The bias is never a [H, Tq, Tk] plane: every score tile needs only the Tr + Tc − 1 diagonals it crosses, which the
// block looks up (two dependent loads per diagonal, one diagonal per thread) into a small shared array sB together with
// the tile's K/V (or Q/dO) load; the score loop starts from sB[c − r + Tr − 1]. Keys at or beyond the row's key length
// are never loaded (their tile rows are zero) and are masked; tiles past the causal limit or the key length are skipped.
//
// Thread layout (all kernels, 128 threads = 4 warps): lane = 8·rg + cg. A tile of M rows is split over the 4 warps
// (M/4 consecutive rows each: warp-private, so a warp's rows of a score tile need only __syncwarp); a thread owns
// RM = M/16 rows row0 + 4i (row0 = 4·RM·warp + rg) and, in a score tile (A·Bᵀ over the head dimension), the columns
// cg + 8j; in an output tile (P·V, over the key/query dimension), the head columns W·cg + 8W·j + w (W = 4, or 2 for
// D = 16). Shared-memory tiles of q/k/v/dout rows have a stride of D + 4 floats (float4 reads of 8 different rows per
// quarter-warp hit 32 different banks), score tiles a stride of N + 8 (4 rows × 8 consecutive columns per store
// hit 32 different banks). Row reductions over a score tile are 3 xor-shuffles among the 8 lanes of a row group.
// __launch_bounds__(128, n): n is the number of blocks per SM that the kernel's shared memory allows on an H100
// (228 KiB per SM), lowered where the register cap it implies (65,536 / (128·n)) would make ptxas spill.
#include "common.cuh"
#include "kernel_helpers.cuh"
#include "attention_common.cuh"

namespace attention_detail {

using namespace attention_common;  // Args, inputs, key_limit, vector_ok, load_bias, kThreads, kLog2e

// This thread's place in the micro-tile layout of a tile whose warps own RM·4 rows each.
struct Layout {
    int row0;  // first owned row of the tile; the others are row0 + 4i
    int cg;    // column group 0..7
};

template <int RM>
__device__ __forceinline__ Layout layout() {
    const int lane = static_cast<int>(lane_id()), warp = static_cast<int>(warp_id());
    return Layout{4 * RM * warp + (lane >> 3), lane & 7};
}

// dst[r][c] (stride LD) = mul · src[r·stride + c] for r < rows, c < hs; 0 for the padding (r < ROWS, c < D). src: fp32,
// or bf16 widened exactly.
template <int ROWS, int D, int LD, typename T>
__device__ __forceinline__ void load_tile(float* __restrict__ dst, const T* __restrict__ src, int stride, int rows,
                                          int hs, bool vec, float mul = 1.0f) {
    constexpr int kChunks = D / 4;
    static_assert((ROWS * kChunks) % kThreads == 0, "tile chunks must be a multiple of the block size");
#pragma unroll
    for (int it = 0; it < ROWS * kChunks / kThreads; ++it) {
        const int idx = it * kThreads + static_cast<int>(threadIdx.x);
        const int r = idx / kChunks, c = (idx % kChunks) * 4;
        float4 v = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
        if (r < rows && c < hs) {
            const T* p = src + static_cast<long long>(r) * stride + c;
            if (vec) {
                float x[4];
                load_vec<4>(x, p);
                v = make_float4(x[0], x[1], x[2], x[3]);
            } else {
                v.x = load_value(p);
                if (c + 1 < hs) v.y = load_value(p + 1);
                if (c + 2 < hs) v.z = load_value(p + 2);
                if (c + 3 < hs) v.w = load_value(p + 3);
            }
            v.x *= mul; v.y *= mul; v.z *= mul; v.w *= mul;
        }
        store_float4(dst + r * LD + c, v);
    }
}

// Score micro-tile, "A·Bᵀ": acc[i][j] += Σ_{k < K} A[row0 + 4i][k] · B[cg + 8j][k]. A, B in shared memory.
// KU: unrolling of the k loop — 2, or 1 where the extra live registers of the bias, the key length and the separate
// q / k / v would otherwise make ptxas spill under the kernel's launch bounds.
template <int RM, int RN, int K, int LDA, int LDB, int KU = 2>
__device__ __forceinline__ void mma_nt(float (&acc)[RM][RN], const float* __restrict__ A, const float* __restrict__ B,
                                       Layout t) {
    static_assert(K % 4 == 0 && LDA % 4 == 0 && LDB % 4 == 0, "float4 operands");
    static_assert(KU == 1 || KU == 2, "k unrolling");
#pragma unroll KU
    for (int k = 0; k < K; k += 4) {
        float4 a[RM];
#pragma unroll
        for (int i = 0; i < RM; ++i) a[i] = load_float4(A + (t.row0 + 4 * i) * LDA + k);
#pragma unroll
        for (int j = 0; j < RN; ++j) {
            const float4 b = load_float4(B + (t.cg + 8 * j) * LDB + k);
#pragma unroll
            for (int i = 0; i < RM; ++i) {
                float s = acc[i][j];
                s = fmaf(a[i].x, b.x, s);
                s = fmaf(a[i].y, b.y, s);
                s = fmaf(a[i].z, b.z, s);
                s = fmaf(a[i].w, b.w, s);
                acc[i][j] = s;
            }
        }
    }
}

// Output micro-tile, "A·B": acc[i][W·j + w] += Σ_{k < K} A[row0 + 4i][k] · B[k][W·cg + 8W·j + w]. Shared memory.
template <int RM, int W, int J, int K, int LDA, int LDB>
__device__ __forceinline__ void mma_nn(float (&acc)[RM][W * J], const float* __restrict__ A, const float* __restrict__ B,
                                       Layout t) {
    static_assert(K % 4 == 0 && LDA % 4 == 0 && LDB % W == 0, "vector operands");
#pragma unroll 2
    for (int k = 0; k < K; k += 4) {
        float a[RM][4];
#pragma unroll
        for (int i = 0; i < RM; ++i) load_vec<4>(a[i], A + (t.row0 + 4 * i) * LDA + k);
#pragma unroll
        for (int kk = 0; kk < 4; ++kk) {
#pragma unroll
            for (int j = 0; j < J; ++j) {
                float b[W];
                load_vec<W>(b, B + (k + kk) * LDB + W * t.cg + 8 * W * j);
#pragma unroll
                for (int i = 0; i < RM; ++i)
#pragma unroll
                    for (int w = 0; w < W; ++w) acc[i][W * j + w] = fmaf(a[i][kk], b[w], acc[i][W * j + w]);
            }
        }
    }
}

// dst[W·cg + 8W·j + w] = v[W·j + w] · mul for the columns < hs (one row of an output tile; bf16 rounded to nearest even).
template <int W, int J, typename T>
__device__ __forceinline__ void store_row(T* __restrict__ dst, const float (&v)[W * J], float mul, int cg, int hs,
                                          bool vec) {
#pragma unroll
    for (int j = 0; j < J; ++j) {
        const int c = W * cg + 8 * W * j;
        if (vec) {
            if (c < hs) {  // hs % 4 == 0, so the whole vector is inside the head
                float x[W];
#pragma unroll
                for (int w = 0; w < W; ++w) x[w] = v[W * j + w] * mul;
                store_vec<W>(dst + c, x);
            }
        } else {
#pragma unroll
            for (int w = 0; w < W; ++w)
                if (c + w < hs) store_value(dst + c + w, v[W * j + w] * mul);
        }
    }
}

// Sum / max over the 8 lanes of a row group (lanes that differ in bits 0..2).
__device__ __forceinline__ float row_group_sum(float v) {
    v += warp_shfl_xor(v, 1);
    v += warp_shfl_xor(v, 2);
    v += warp_shfl_xor(v, 4);
    return v;
}
__device__ __forceinline__ float row_group_max(float v) {
    v = fmaxf(v, warp_shfl_xor(v, 1));
    v = fmaxf(v, warp_shfl_xor(v, 2));
    v = fmaxf(v, warp_shfl_xor(v, 4));
    return v;
}

template <int D> struct OutputVector {
    static constexpr int W = D >= 32 ? 4 : 2;  // head columns per vector
    static constexpr int J = D / (8 * W);      // vectors per row and thread
};

// ── forward ──
// Block: BR = 64 query rows [q0, q0 + 64) of one (b, h); loops over key tiles of BC rows up to the row's key length
// (and the causal limit). Shared memory (floats): Q [64][D+4], K [BC][D+4], V [BC][D+4], P [64][BC+8], bias [64+BC].
template <int D, int BC, typename T>
__device__ __forceinline__ void forward(T* __restrict__ out, int out_stride, float* __restrict__ lse, const Args<T> a) {
    constexpr int BR = 64, RM = BR / 16, RN = BC / 8, LD = D + 4, LDP = BC + 8;
    constexpr int W = OutputVector<D>::W, J = OutputVector<D>::J;
    float* sQ = dynamic_smem<float>();
    float* sK = sQ + BR * LD;
    float* sV = sK + BC * LD;
    float* sP = sV + BC * LD;
    float* sB = sP + BR * LDP;
    const Layout t = layout<RM>();
    const int hs = a.hs, bh = static_cast<int>(blockIdx.y), b = bh / a.H, h = bh - b * a.H;
    const int q0 = (static_cast<int>(gridDim.x) - 1 - static_cast<int>(blockIdx.x)) * BR;  // longest rows first
    const int keys = key_limit(a.key_lengths, b, a.Tk);
    const bool vec = vector_ok(hs | a.q_stride | a.k_stride | a.v_stride | out_stride, a.q, a.k, a.v, out);
    const long long q_rows = static_cast<long long>(b) * a.Tq;  // row (b, 0) of q / out
    const T* kh = a.k + static_cast<long long>(b) * a.Tk * a.k_stride + h * hs;
    const T* vh = a.v + static_cast<long long>(b) * a.Tk * a.v_stride + h * hs;
    const int bias_base = t.cg - t.row0 + BR - 1;  // sB index of this thread's score (i, j) is bias_base + 8j − 4i

    load_tile<BR, D, LD>(sQ, a.q + (q_rows + q0) * a.q_stride + h * hs, a.q_stride, min(BR, a.Tq - q0), hs, vec, a.scale);

    float o[RM][W * J], m[RM], l[RM];  // l: this thread's part of the row sum (its columns), reduced at the end
#pragma unroll
    for (int i = 0; i < RM; ++i) {
        m[i] = -INFINITY;
        l[i] = 0.0f;
#pragma unroll
        for (int n = 0; n < W * J; ++n) o[i][n] = 0.0f;
    }

    const int key_end = a.causal ? min(keys, q0 + BR) : keys;  // keys 0 .. key_end − 1 are visible to some row
    for (int k0 = 0; k0 < key_end; k0 += BC) {
        __syncthreads();  // the previous tile's K, V, bias (and the Q load) are done with
        const int rows = min(BC, keys - k0);
        load_tile<BC, D, LD>(sK, kh + static_cast<long long>(k0) * a.k_stride, a.k_stride, rows, hs, vec);
        load_tile<BC, D, LD>(sV, vh + static_cast<long long>(k0) * a.v_stride, a.v_stride, rows, hs, vec);
        load_bias<BR, BC>(sB, a.table, a.bucket_by_offset, q0, k0, a.Tq, a.Tk, a.H, h);
        __syncthreads();

        float s[RM][RN];
#pragma unroll
        for (int i = 0; i < RM; ++i)
#pragma unroll
            for (int j = 0; j < RN; ++j) s[i][j] = sB[bias_base + 8 * j - 4 * i];
        mma_nt<RM, RN, D, LD, LD>(s, sQ, sK, t);

        if (k0 + BC > keys || (a.causal && k0 + BC - 1 > q0)) {  // the tile crosses the key length or the diagonal
#pragma unroll
            for (int i = 0; i < RM; ++i)
#pragma unroll
                for (int j = 0; j < RN; ++j) {
                    const int row = q0 + t.row0 + 4 * i, col = k0 + t.cg + 8 * j;
                    if (col >= keys || (a.causal && col > row)) s[i][j] = -INFINITY;
                }
        }
        // Online softmax. Key tile 0 always holds column 0 (keys ≥ 1, 0 ≤ row), so m is finite from the first tile on.
#pragma unroll
        for (int i = 0; i < RM; ++i) {
            float mx = s[i][0];
#pragma unroll
            for (int j = 1; j < RN; ++j) mx = fmaxf(mx, s[i][j]);
            const float m_new = fmaxf(m[i], row_group_max(mx));
            const float alpha = exp2f((m[i] - m_new) * kLog2e);  // 0 on the first tile (m = −∞)
            const float mc = m_new * kLog2e;
            float rs = 0.0f;
#pragma unroll
            for (int j = 0; j < RN; ++j) {
                const float p = exp2f(fmaf(s[i][j], kLog2e, -mc));
                sP[(t.row0 + 4 * i) * LDP + t.cg + 8 * j] = p;
                rs += p;
            }
            l[i] = fmaf(l[i], alpha, rs);
            m[i] = m_new;
#pragma unroll
            for (int n = 0; n < W * J; ++n) o[i][n] *= alpha;
        }
        __syncwarp();  // P rows are warp-private
        mma_nn<RM, W, J, BC, LDP, LD>(o, sP, sV, t);
    }

#pragma unroll
    for (int i = 0; i < RM; ++i) {
        const float sum = row_group_sum(l[i]);
        const int row = q0 + t.row0 + 4 * i;
        if (row < a.Tq) {
            store_row<W, J>(out + (q_rows + row) * out_stride + h * hs, o[i], 1.0f / sum, t.cg, hs, vec);
            if (t.cg == 0) lse[static_cast<long long>(bh) * a.Tq + row] = m[i] + logf(sum);
        }
    }
}

// ── backward: dQ (and D = rowsum(dout ∘ out)) ──
// Block: BR query rows [q0, q0 + BR) of one (b, h); loops over key tiles of BC rows up to the key length (and the
// causal limit). Shared memory (floats): Q [BR][D+4], dO [BR][D+4], K [BC][D+4], V [BC][D+4], dS [BR][BC+8], bias [BR+BC].
template <int D, int BR, int BC, int KU, typename T>
__device__ __forceinline__ void backward_dq(float* __restrict__ dq, int dq_stride, float* __restrict__ dsum,
                                            const float* __restrict__ dout, int dout_stride, const T* __restrict__ out,
                                            int out_stride, const float* __restrict__ lse, const Args<T> a) {
    constexpr int RM = BR / 16, RN = BC / 8, LD = D + 4, LDS = BC + 8;
    constexpr int W = OutputVector<D>::W, J = OutputVector<D>::J;
    float* sQ = dynamic_smem<float>();
    float* sdO = sQ + BR * LD;
    float* sK = sdO + BR * LD;
    float* sV = sK + BC * LD;
    float* sdS = sV + BC * LD;
    float* sB = sdS + BR * LDS;
    const Layout t = layout<RM>();
    const int hs = a.hs, bh = static_cast<int>(blockIdx.y), b = bh / a.H, h = bh - b * a.H;
    const int q0 = (static_cast<int>(gridDim.x) - 1 - static_cast<int>(blockIdx.x)) * BR;  // longest rows first
    const int keys = key_limit(a.key_lengths, b, a.Tk);
    const bool vec = vector_ok(hs | a.q_stride | a.k_stride | a.v_stride | dq_stride | dout_stride | out_stride,
                               a.q, a.k, a.v, dq, dout, out);
    const T* kh = a.k + static_cast<long long>(b) * a.Tk * a.k_stride + h * hs;
    const T* vh = a.v + static_cast<long long>(b) * a.Tk * a.v_stride + h * hs;
    const long long row_base = static_cast<long long>(b) * a.Tq;  // row (b, 0) of q / out / dout / dq
    const int rows = min(BR, a.Tq - q0);
    const int bias_base = t.cg - t.row0 + BR - 1;

    load_tile<BR, D, LD>(sQ, a.q + (row_base + q0) * a.q_stride + h * hs, a.q_stride, rows, hs, vec, a.scale);
    load_tile<BR, D, LD>(sdO, dout + (row_base + q0) * dout_stride + h * hs, dout_stride, rows, hs, vec);
    __syncthreads();

    // Per owned row: D_i = dout_i · out_i (saved for the dK/dV kernel) and lse_i in base 2.
    float di[RM], lse2[RM];
#pragma unroll
    for (int i = 0; i < RM; ++i) {
        const int r = t.row0 + 4 * i, row = q0 + r;
        float d = 0.0f;
        if (row < a.Tq) {
            const T* o_row = out + (row_base + row) * out_stride + h * hs;
            for (int c = t.cg; c < hs; c += 8) d = fmaf(sdO[r * LD + c], load_value(o_row + c), d);
        }
        d = row_group_sum(d);
        di[i] = d;
        lse2[i] = row < a.Tq ? lse[static_cast<long long>(bh) * a.Tq + row] * kLog2e : 0.0f;
        if (row < a.Tq && t.cg == 0) dsum[static_cast<long long>(bh) * a.Tq + row] = d;
    }

    float acc[RM][W * J];
#pragma unroll
    for (int i = 0; i < RM; ++i)
#pragma unroll
        for (int n = 0; n < W * J; ++n) acc[i][n] = 0.0f;

    const int key_end = a.causal ? min(keys, q0 + BR) : keys;
    for (int k0 = 0; k0 < key_end; k0 += BC) {
        __syncthreads();
        const int krows = min(BC, keys - k0);
        load_tile<BC, D, LD>(sK, kh + static_cast<long long>(k0) * a.k_stride, a.k_stride, krows, hs, vec);
        load_tile<BC, D, LD>(sV, vh + static_cast<long long>(k0) * a.v_stride, a.v_stride, krows, hs, vec);
        load_bias<BR, BC>(sB, a.table, a.bucket_by_offset, q0, k0, a.Tq, a.Tk, a.H, h);
        __syncthreads();

        float s[RM][RN], dp[RM][RN];
#pragma unroll
        for (int i = 0; i < RM; ++i)
#pragma unroll
            for (int j = 0; j < RN; ++j) {
                s[i][j] = sB[bias_base + 8 * j - 4 * i];
                dp[i][j] = 0.0f;
            }
        mma_nt<RM, RN, D, LD, LD, KU>(s, sQ, sK, t);    // scale·q_i · k_j + bias
        mma_nt<RM, RN, D, LD, LD, KU>(dp, sdO, sV, t);  // dout_i · v_j

        const bool masked = k0 + BC > keys || (a.causal && k0 + BC - 1 > q0);
#pragma unroll
        for (int i = 0; i < RM; ++i)
#pragma unroll
            for (int j = 0; j < RN; ++j) {
                const int row = q0 + t.row0 + 4 * i, col = k0 + t.cg + 8 * j;
                float p = exp2f(fmaf(s[i][j], kLog2e, -lse2[i]));
                if (masked && (col >= keys || (a.causal && col > row))) p = 0.0f;
                sdS[(t.row0 + 4 * i) * LDS + t.cg + 8 * j] = p * (dp[i][j] - di[i]);
            }
        __syncwarp();  // dS rows are warp-private
        mma_nn<RM, W, J, BC, LDS, LD>(acc, sdS, sK, t);
    }

#pragma unroll
    for (int i = 0; i < RM; ++i) {
        const int row = q0 + t.row0 + 4 * i;
        if (row < a.Tq) store_row<W, J>(dq + (row_base + row) * dq_stride + h * hs, acc[i], a.scale, t.cg, hs, vec);
    }
}

// ── backward: dK, dV ──
// Block: BC key rows [k0, k0 + BC) of one (b, h); loops over query tiles of BR rows (from the one holding row k0 when
// causal) to Tq. Works on transposed score tiles (rows = keys, columns = queries). A block whose keys all lie at or past
// the row's key length only writes zeros. Shared memory (floats): K [BC][D+4], V [BC][D+4], Q [BR][D+4], dO [BR][D+4],
// Pᵀ [BC][BR+8], dSᵀ [BC][BR+8], lse·log2(e) [BR], D [BR], bias [BR+BC].
template <int D, int BC, int BR, int KU, typename T>
__device__ __forceinline__ void backward_dkv(float* __restrict__ dk, int dk_stride, float* __restrict__ dv, int dv_stride,
                                             const float* __restrict__ dout, int dout_stride, const float* __restrict__ lse,
                                             const float* __restrict__ dsum, const Args<T> a) {
    constexpr int RM = BC / 16, RN = BR / 8, LD = D + 4, LDS = BR + 8;
    constexpr int W = OutputVector<D>::W, J = OutputVector<D>::J;
    float* sK = dynamic_smem<float>();
    float* sV = sK + BC * LD;
    float* sQ = sV + BC * LD;
    float* sdO = sQ + BR * LD;
    float* sP = sdO + BR * LD;
    float* sdS = sP + BC * LDS;
    float* sL = sdS + BC * LDS;
    float* sD = sL + BR;
    float* sB = sD + BR;
    const Layout t = layout<RM>();
    const int hs = a.hs, bh = static_cast<int>(blockIdx.y), b = bh / a.H, h = bh - b * a.H;
    const int k0 = static_cast<int>(blockIdx.x) * BC;  // the first key tiles see the most queries: they start first
    const int keys = key_limit(a.key_lengths, b, a.Tk);
    const bool vec = vector_ok(hs | a.q_stride | a.k_stride | a.v_stride | dk_stride | dv_stride | dout_stride,
                               a.q, a.k, a.v, dk, dv, dout);
    const long long q_rows = static_cast<long long>(b) * a.Tq;  // row (b, 0) of q / dout
    const long long k_rows = static_cast<long long>(b) * a.Tk;  // row (b, 0) of k / v / dk / dv
    const long long stat_base = static_cast<long long>(bh) * a.Tq;
    // sB index of this thread's transposed score (key row0 + 4i, query cg + 8j): (row0 + 4i) − (cg + 8j) + BR − 1.
    const int bias_base = t.row0 - t.cg + BR - 1;

    float acc_k[RM][W * J], acc_v[RM][W * J];
#pragma unroll
    for (int i = 0; i < RM; ++i)
#pragma unroll
        for (int n = 0; n < W * J; ++n) acc_k[i][n] = acc_v[i][n] = 0.0f;

    if (k0 < keys) {  // block-uniform
        const int krows = min(BC, keys - k0);
        load_tile<BC, D, LD>(sK, a.k + (k_rows + k0) * a.k_stride + h * hs, a.k_stride, krows, hs, vec);
        load_tile<BC, D, LD>(sV, a.v + (k_rows + k0) * a.v_stride + h * hs, a.v_stride, krows, hs, vec);

        for (int q0 = a.causal ? (k0 / BR) * BR : 0; q0 < a.Tq; q0 += BR) {
            __syncthreads();
            const int rows = min(BR, a.Tq - q0);
            load_tile<BR, D, LD>(sQ, a.q + (q_rows + q0) * a.q_stride + h * hs, a.q_stride, rows, hs, vec, a.scale);
            load_tile<BR, D, LD>(sdO, dout + (q_rows + q0) * dout_stride + h * hs, dout_stride, rows, hs, vec);
            for (int r = static_cast<int>(threadIdx.x); r < BR; r += kThreads) {
                sL[r] = r < rows ? lse[stat_base + q0 + r] * kLog2e : 0.0f;
                sD[r] = r < rows ? dsum[stat_base + q0 + r] : 0.0f;
            }
            load_bias<BR, BC>(sB, a.table, a.bucket_by_offset, q0, k0, a.Tq, a.Tk, a.H, h);
            __syncthreads();

            float s[RM][RN], dp[RM][RN];
#pragma unroll
            for (int i = 0; i < RM; ++i)
#pragma unroll
                for (int j = 0; j < RN; ++j) {
                    s[i][j] = sB[bias_base + 4 * i - 8 * j];
                    dp[i][j] = 0.0f;
                }
            mma_nt<RM, RN, D, LD, LD, KU>(s, sK, sQ, t);    // k_i · scale·q_j + bias
            mma_nt<RM, RN, D, LD, LD, KU>(dp, sV, sdO, t);  // v_i · dout_j

            const bool masked = q0 + BR > a.Tq || k0 + BC > keys || (a.causal && q0 < k0 + BC - 1);
#pragma unroll
            for (int i = 0; i < RM; ++i)
#pragma unroll
                for (int j = 0; j < RN; ++j) {
                    const int key = k0 + t.row0 + 4 * i, r = t.cg + 8 * j, query = q0 + r;
                    float p = exp2f(fmaf(s[i][j], kLog2e, -sL[r]));
                    if (masked && (query >= a.Tq || key >= keys || (a.causal && query < key))) p = 0.0f;
                    sP[(t.row0 + 4 * i) * LDS + r] = p;
                    sdS[(t.row0 + 4 * i) * LDS + r] = p * (dp[i][j] - sD[r]);
                }
            __syncwarp();  // Pᵀ and dSᵀ rows are warp-private
            mma_nn<RM, W, J, BR, LDS, LD>(acc_v, sP, sdO, t);
            mma_nn<RM, W, J, BR, LDS, LD>(acc_k, sdS, sQ, t);  // sQ holds scale·q: dk needs no further scaling
        }
    }

#pragma unroll
    for (int i = 0; i < RM; ++i) {
        const int key = k0 + t.row0 + 4 * i;
        if (key < a.Tk) {
            store_row<W, J>(dk + (k_rows + key) * dk_stride + h * hs, acc_k[i], 1.0f, t.cg, hs, vec);
            store_row<W, J>(dv + (k_rows + key) * dv_stride + h * hs, acc_v[i], 1.0f, t.cg, hs, vec);
        }
    }
}

}  // namespace attention_detail

// The parameter lists are long but uniform: each ends with the inputs and shape (q … scale), and both backward kernels
// take the same list (each ignores the other's outputs), so the launcher fills one argument array for both.

// attention_forward_hs{16,32,64,128} — attention forward for head sizes padded to 16 / 32 / 64 / 128.
//   out: [B, Tq, ·] fp32, row stride out_stride ≥ A (A = H·hs; written for every row and this head's columns);
//   lse: [B, H, Tq] fp32 (saved for the backward: natural-log logsumexp of the scaled, biased scores); q: [B, Tq, ·] row
//   stride q_stride; k, v: [B, Tk, ·] row strides k_stride, v_stride (each ≥ A; head h at columns h·hs ..); table:
//   [numBuckets, H] or null (no bias); bucket_by_offset: [Tq + Tk − 1] bucket of relative position j − i at index
//   j − i + Tq − 1 (null with table); key_lengths: [B], each in [1, Tk], or null (all Tk keys); causal: 0 or 1
//   (j ≤ i); scale: multiplies q·k (1/√hs for GPT-2, 1 for T5 and Llama). Tq, Tk ≥ 1, hs ≤ D.
//   Grid: (ceil(Tq / 64), B·H); block: 128 threads; block x handles query rows [q0, q0 + 64) with
//   q0 = (gridDim.x − 1 − x)·64 of head blockIdx.y = b·H + h. Key tiles: 64 rows (D ≤ 64) or 32 (D = 128), up to the
//   row's key length (and the diagonal when causal); only tiles crossing the key length or the diagonal are masked.
//   Dynamic shared memory: 4·(64·(D+4) + 2·BC·(D+4) + 64·(BC+8) + 64 + BC) bytes (34,304 / 46,592 / 71,168 / 78,208).
extern "C" __global__ void __launch_bounds__(128, 4) attention_forward_hs16(float* __restrict__ out, float* __restrict__ lse, const float* __restrict__ q, const float* __restrict__ k, const float* __restrict__ v, const float* __restrict__ table, const int* __restrict__ bucket_by_offset, const int* __restrict__ key_lengths, int out_stride, int q_stride, int k_stride, int v_stride, int Tq, int Tk, int H, int hs, int causal, float scale) {
    using namespace attention_detail;
    forward<16, 64>(out, out_stride, lse, inputs(q, k, v, table, bucket_by_offset, key_lengths, q_stride, k_stride, v_stride, Tq, Tk, H, hs, causal, scale));
}
extern "C" __global__ void __launch_bounds__(128, 4) attention_forward_bf16_hs16(bf16* __restrict__ out, float* __restrict__ lse, const bf16* __restrict__ q, const bf16* __restrict__ k, const bf16* __restrict__ v, const float* __restrict__ table, const int* __restrict__ bucket_by_offset, const int* __restrict__ key_lengths, int out_stride, int q_stride, int k_stride, int v_stride, int Tq, int Tk, int H, int hs, int causal, float scale) {
    using namespace attention_detail;
    forward<16, 64>(out, out_stride, lse, inputs(q, k, v, table, bucket_by_offset, key_lengths, q_stride, k_stride, v_stride, Tq, Tk, H, hs, causal, scale));
}
extern "C" __global__ void __launch_bounds__(128, 3) attention_forward_hs32(float* __restrict__ out, float* __restrict__ lse, const float* __restrict__ q, const float* __restrict__ k, const float* __restrict__ v, const float* __restrict__ table, const int* __restrict__ bucket_by_offset, const int* __restrict__ key_lengths, int out_stride, int q_stride, int k_stride, int v_stride, int Tq, int Tk, int H, int hs, int causal, float scale) {
    using namespace attention_detail;
    forward<32, 64>(out, out_stride, lse, inputs(q, k, v, table, bucket_by_offset, key_lengths, q_stride, k_stride, v_stride, Tq, Tk, H, hs, causal, scale));
}
extern "C" __global__ void __launch_bounds__(128, 3) attention_forward_bf16_hs32(bf16* __restrict__ out, float* __restrict__ lse, const bf16* __restrict__ q, const bf16* __restrict__ k, const bf16* __restrict__ v, const float* __restrict__ table, const int* __restrict__ bucket_by_offset, const int* __restrict__ key_lengths, int out_stride, int q_stride, int k_stride, int v_stride, int Tq, int Tk, int H, int hs, int causal, float scale) {
    using namespace attention_detail;
    forward<32, 64>(out, out_stride, lse, inputs(q, k, v, table, bucket_by_offset, key_lengths, q_stride, k_stride, v_stride, Tq, Tk, H, hs, causal, scale));
}
extern "C" __global__ void __launch_bounds__(128, 3) attention_forward_hs64(float* __restrict__ out, float* __restrict__ lse, const float* __restrict__ q, const float* __restrict__ k, const float* __restrict__ v, const float* __restrict__ table, const int* __restrict__ bucket_by_offset, const int* __restrict__ key_lengths, int out_stride, int q_stride, int k_stride, int v_stride, int Tq, int Tk, int H, int hs, int causal, float scale) {
    using namespace attention_detail;
    forward<64, 64>(out, out_stride, lse, inputs(q, k, v, table, bucket_by_offset, key_lengths, q_stride, k_stride, v_stride, Tq, Tk, H, hs, causal, scale));
}
extern "C" __global__ void __launch_bounds__(128, 3) attention_forward_bf16_hs64(bf16* __restrict__ out, float* __restrict__ lse, const bf16* __restrict__ q, const bf16* __restrict__ k, const bf16* __restrict__ v, const float* __restrict__ table, const int* __restrict__ bucket_by_offset, const int* __restrict__ key_lengths, int out_stride, int q_stride, int k_stride, int v_stride, int Tq, int Tk, int H, int hs, int causal, float scale) {
    using namespace attention_detail;
    forward<64, 64>(out, out_stride, lse, inputs(q, k, v, table, bucket_by_offset, key_lengths, q_stride, k_stride, v_stride, Tq, Tk, H, hs, causal, scale));
}
extern "C" __global__ void __launch_bounds__(128, 2) attention_forward_hs128(float* __restrict__ out, float* __restrict__ lse, const float* __restrict__ q, const float* __restrict__ k, const float* __restrict__ v, const float* __restrict__ table, const int* __restrict__ bucket_by_offset, const int* __restrict__ key_lengths, int out_stride, int q_stride, int k_stride, int v_stride, int Tq, int Tk, int H, int hs, int causal, float scale) {
    using namespace attention_detail;
    forward<128, 32>(out, out_stride, lse, inputs(q, k, v, table, bucket_by_offset, key_lengths, q_stride, k_stride, v_stride, Tq, Tk, H, hs, causal, scale));
}
extern "C" __global__ void __launch_bounds__(128, 2) attention_forward_bf16_hs128(bf16* __restrict__ out, float* __restrict__ lse, const bf16* __restrict__ q, const bf16* __restrict__ k, const bf16* __restrict__ v, const float* __restrict__ table, const int* __restrict__ bucket_by_offset, const int* __restrict__ key_lengths, int out_stride, int q_stride, int k_stride, int v_stride, int Tq, int Tk, int H, int hs, int causal, float scale) {
    using namespace attention_detail;
    forward<128, 32>(out, out_stride, lse, inputs(q, k, v, table, bucket_by_offset, key_lengths, q_stride, k_stride, v_stride, Tq, Tk, H, hs, causal, scale));
}

// attention_backward_dq_hs{16,32,64,128} — backward, step 1: dq and D = rowsum(dout ∘ out).
//   dq: [B, Tq, ·] fp32 row stride dq_stride (every row, this head's columns); dsum: [B, H, Tq] fp32 scratch — writes
//   D_i = dout_i · out_i (read by the dK/dV kernel); dout: [B, Tq, ·] dout_stride; out: [B, Tq, ·] out_stride; lse:
//   [B, H, Tq] from the forward; q, k, v, table, bucket_by_offset, key_lengths, their strides, Tq, Tk, H, hs, causal,
//   scale: as the forward. dk, dv, dk_stride, dv_stride: unused (the dK/dV kernel's; one parameter list for both).
//   Grid: (ceil(Tq / BR), B·H) with BR = 64 (D ≤ 64) or 32 (D = 128); block: 128 threads; block x handles query rows
//   [q0, q0 + BR), q0 = (gridDim.x − 1 − x)·BR, and loops over key tiles of 32 rows up to the key length (and the
//   diagonal): P = exp(s − lse) and dP = dout·vᵀ recomputed, dS = P ∘ (dP − D), dq += dS·k·scale — summed by one
//   thread per element in key order (deterministic).
//   Dynamic shared memory: 4·(2·BR·(D+4) + 2·32·(D+4) + BR·40 + BR + 32) bytes (25,984 / 38,272 / 62,848 / 72,960).
extern "C" __global__ void __launch_bounds__(128, 4) attention_backward_dq_hs16(float* __restrict__ dq, float* __restrict__ dk, float* __restrict__ dv, float* __restrict__ dsum, const float* __restrict__ dout, const float* __restrict__ out, const float* __restrict__ lse, const float* __restrict__ q, const float* __restrict__ k, const float* __restrict__ v, const float* __restrict__ table, const int* __restrict__ bucket_by_offset, const int* __restrict__ key_lengths, int dq_stride, int dk_stride, int dv_stride, int dout_stride, int out_stride, int q_stride, int k_stride, int v_stride, int Tq, int Tk, int H, int hs, int causal, float scale) {
    using namespace attention_detail;
    backward_dq<16, 64, 32, 2>(dq, dq_stride, dsum, dout, dout_stride, out, out_stride, lse, inputs(q, k, v, table, bucket_by_offset, key_lengths, q_stride, k_stride, v_stride, Tq, Tk, H, hs, causal, scale));
}
extern "C" __global__ void __launch_bounds__(128, 4) attention_backward_dq_bf16_hs16(float* __restrict__ dq, float* __restrict__ dk, float* __restrict__ dv, float* __restrict__ dsum, const float* __restrict__ dout, const bf16* __restrict__ out, const float* __restrict__ lse, const bf16* __restrict__ q, const bf16* __restrict__ k, const bf16* __restrict__ v, const float* __restrict__ table, const int* __restrict__ bucket_by_offset, const int* __restrict__ key_lengths, int dq_stride, int dk_stride, int dv_stride, int dout_stride, int out_stride, int q_stride, int k_stride, int v_stride, int Tq, int Tk, int H, int hs, int causal, float scale) {
    using namespace attention_detail;
    backward_dq<16, 64, 32, 2>(dq, dq_stride, dsum, dout, dout_stride, out, out_stride, lse, inputs(q, k, v, table, bucket_by_offset, key_lengths, q_stride, k_stride, v_stride, Tq, Tk, H, hs, causal, scale));
}
extern "C" __global__ void __launch_bounds__(128, 4) attention_backward_dq_hs32(float* __restrict__ dq, float* __restrict__ dk, float* __restrict__ dv, float* __restrict__ dsum, const float* __restrict__ dout, const float* __restrict__ out, const float* __restrict__ lse, const float* __restrict__ q, const float* __restrict__ k, const float* __restrict__ v, const float* __restrict__ table, const int* __restrict__ bucket_by_offset, const int* __restrict__ key_lengths, int dq_stride, int dk_stride, int dv_stride, int dout_stride, int out_stride, int q_stride, int k_stride, int v_stride, int Tq, int Tk, int H, int hs, int causal, float scale) {
    using namespace attention_detail;
    backward_dq<32, 64, 32, 1>(dq, dq_stride, dsum, dout, dout_stride, out, out_stride, lse, inputs(q, k, v, table, bucket_by_offset, key_lengths, q_stride, k_stride, v_stride, Tq, Tk, H, hs, causal, scale));
}
extern "C" __global__ void __launch_bounds__(128, 4) attention_backward_dq_bf16_hs32(float* __restrict__ dq, float* __restrict__ dk, float* __restrict__ dv, float* __restrict__ dsum, const float* __restrict__ dout, const bf16* __restrict__ out, const float* __restrict__ lse, const bf16* __restrict__ q, const bf16* __restrict__ k, const bf16* __restrict__ v, const float* __restrict__ table, const int* __restrict__ bucket_by_offset, const int* __restrict__ key_lengths, int dq_stride, int dk_stride, int dv_stride, int dout_stride, int out_stride, int q_stride, int k_stride, int v_stride, int Tq, int Tk, int H, int hs, int causal, float scale) {
    using namespace attention_detail;
    backward_dq<32, 64, 32, 1>(dq, dq_stride, dsum, dout, dout_stride, out, out_stride, lse, inputs(q, k, v, table, bucket_by_offset, key_lengths, q_stride, k_stride, v_stride, Tq, Tk, H, hs, causal, scale));
}
extern "C" __global__ void __launch_bounds__(128, 3) attention_backward_dq_hs64(float* __restrict__ dq, float* __restrict__ dk, float* __restrict__ dv, float* __restrict__ dsum, const float* __restrict__ dout, const float* __restrict__ out, const float* __restrict__ lse, const float* __restrict__ q, const float* __restrict__ k, const float* __restrict__ v, const float* __restrict__ table, const int* __restrict__ bucket_by_offset, const int* __restrict__ key_lengths, int dq_stride, int dk_stride, int dv_stride, int dout_stride, int out_stride, int q_stride, int k_stride, int v_stride, int Tq, int Tk, int H, int hs, int causal, float scale) {
    using namespace attention_detail;
    backward_dq<64, 64, 32, 2>(dq, dq_stride, dsum, dout, dout_stride, out, out_stride, lse, inputs(q, k, v, table, bucket_by_offset, key_lengths, q_stride, k_stride, v_stride, Tq, Tk, H, hs, causal, scale));
}
extern "C" __global__ void __launch_bounds__(128, 3) attention_backward_dq_bf16_hs64(float* __restrict__ dq, float* __restrict__ dk, float* __restrict__ dv, float* __restrict__ dsum, const float* __restrict__ dout, const bf16* __restrict__ out, const float* __restrict__ lse, const bf16* __restrict__ q, const bf16* __restrict__ k, const bf16* __restrict__ v, const float* __restrict__ table, const int* __restrict__ bucket_by_offset, const int* __restrict__ key_lengths, int dq_stride, int dk_stride, int dv_stride, int dout_stride, int out_stride, int q_stride, int k_stride, int v_stride, int Tq, int Tk, int H, int hs, int causal, float scale) {
    using namespace attention_detail;
    backward_dq<64, 64, 32, 2>(dq, dq_stride, dsum, dout, dout_stride, out, out_stride, lse, inputs(q, k, v, table, bucket_by_offset, key_lengths, q_stride, k_stride, v_stride, Tq, Tk, H, hs, causal, scale));
}
extern "C" __global__ void __launch_bounds__(128, 3) attention_backward_dq_hs128(float* __restrict__ dq, float* __restrict__ dk, float* __restrict__ dv, float* __restrict__ dsum, const float* __restrict__ dout, const float* __restrict__ out, const float* __restrict__ lse, const float* __restrict__ q, const float* __restrict__ k, const float* __restrict__ v, const float* __restrict__ table, const int* __restrict__ bucket_by_offset, const int* __restrict__ key_lengths, int dq_stride, int dk_stride, int dv_stride, int dout_stride, int out_stride, int q_stride, int k_stride, int v_stride, int Tq, int Tk, int H, int hs, int causal, float scale) {
    using namespace attention_detail;
    backward_dq<128, 32, 32, 1>(dq, dq_stride, dsum, dout, dout_stride, out, out_stride, lse, inputs(q, k, v, table, bucket_by_offset, key_lengths, q_stride, k_stride, v_stride, Tq, Tk, H, hs, causal, scale));
}
extern "C" __global__ void __launch_bounds__(128, 3) attention_backward_dq_bf16_hs128(float* __restrict__ dq, float* __restrict__ dk, float* __restrict__ dv, float* __restrict__ dsum, const float* __restrict__ dout, const bf16* __restrict__ out, const float* __restrict__ lse, const bf16* __restrict__ q, const bf16* __restrict__ k, const bf16* __restrict__ v, const float* __restrict__ table, const int* __restrict__ bucket_by_offset, const int* __restrict__ key_lengths, int dq_stride, int dk_stride, int dv_stride, int dout_stride, int out_stride, int q_stride, int k_stride, int v_stride, int Tq, int Tk, int H, int hs, int causal, float scale) {
    using namespace attention_detail;
    backward_dq<128, 32, 32, 1>(dq, dq_stride, dsum, dout, dout_stride, out, out_stride, lse, inputs(q, k, v, table, bucket_by_offset, key_lengths, q_stride, k_stride, v_stride, Tq, Tk, H, hs, causal, scale));
}

// attention_backward_dkv_hs{16,32,64,128} — backward, step 2 (after dq): dk and dv.
//   dk, dv: [B, Tk, ·] fp32, row strides dk_stride, dv_stride — every row of this head's columns (keys at or past the
//   row's key length, and keys no query sees, get 0); dk and dv may be column slices of one buffer (GPT-2's dqkv), but
//   no element may be both. dsum: [B, H, Tq] (D from the dq kernel); dout: [B, Tq, ·] dout_stride; lse: [B, H, Tq];
//   q, k, v, table, bucket_by_offset, key_lengths, their strides, Tq, Tk, H, hs, causal, scale: as the forward. dq,
//   out, dq_stride, out_stride: unused (the dq kernel's; one parameter list for both).
//   Grid: (ceil(Tk / BC), B·H) with BC = 64 (D ≤ 64) or 32 (D = 128); block: 128 threads; block x handles key rows
//   [x·BC, x·BC + BC) and loops over query tiles of 32 rows (from the one holding its first key when causal) to Tq:
//   Pᵀ and dPᵀ = v·doutᵀ recomputed, dSᵀ = Pᵀ ∘ (dPᵀ − D), dv += Pᵀ·dout, dk += dSᵀ·q·scale — one thread per element,
//   query order (deterministic).
//   Dynamic shared memory: 4·(2·BC·(D+4) + 2·32·(D+4) + 2·BC·40 + 64 + 32 + BC) bytes (36,480 / 48,768 / 73,344 / 78,336).
extern "C" __global__ void __launch_bounds__(128, 4) attention_backward_dkv_hs16(float* __restrict__ dq, float* __restrict__ dk, float* __restrict__ dv, float* __restrict__ dsum, const float* __restrict__ dout, const float* __restrict__ out, const float* __restrict__ lse, const float* __restrict__ q, const float* __restrict__ k, const float* __restrict__ v, const float* __restrict__ table, const int* __restrict__ bucket_by_offset, const int* __restrict__ key_lengths, int dq_stride, int dk_stride, int dv_stride, int dout_stride, int out_stride, int q_stride, int k_stride, int v_stride, int Tq, int Tk, int H, int hs, int causal, float scale) {
    using namespace attention_detail;
    backward_dkv<16, 64, 32, 2>(dk, dk_stride, dv, dv_stride, dout, dout_stride, lse, dsum, inputs(q, k, v, table, bucket_by_offset, key_lengths, q_stride, k_stride, v_stride, Tq, Tk, H, hs, causal, scale));
}
extern "C" __global__ void __launch_bounds__(128, 4) attention_backward_dkv_bf16_hs16(float* __restrict__ dq, float* __restrict__ dk, float* __restrict__ dv, float* __restrict__ dsum, const float* __restrict__ dout, const bf16* __restrict__ out, const float* __restrict__ lse, const bf16* __restrict__ q, const bf16* __restrict__ k, const bf16* __restrict__ v, const float* __restrict__ table, const int* __restrict__ bucket_by_offset, const int* __restrict__ key_lengths, int dq_stride, int dk_stride, int dv_stride, int dout_stride, int out_stride, int q_stride, int k_stride, int v_stride, int Tq, int Tk, int H, int hs, int causal, float scale) {
    using namespace attention_detail;
    backward_dkv<16, 64, 32, 2>(dk, dk_stride, dv, dv_stride, dout, dout_stride, lse, dsum, inputs(q, k, v, table, bucket_by_offset, key_lengths, q_stride, k_stride, v_stride, Tq, Tk, H, hs, causal, scale));
}
extern "C" __global__ void __launch_bounds__(128, 3) attention_backward_dkv_hs32(float* __restrict__ dq, float* __restrict__ dk, float* __restrict__ dv, float* __restrict__ dsum, const float* __restrict__ dout, const float* __restrict__ out, const float* __restrict__ lse, const float* __restrict__ q, const float* __restrict__ k, const float* __restrict__ v, const float* __restrict__ table, const int* __restrict__ bucket_by_offset, const int* __restrict__ key_lengths, int dq_stride, int dk_stride, int dv_stride, int dout_stride, int out_stride, int q_stride, int k_stride, int v_stride, int Tq, int Tk, int H, int hs, int causal, float scale) {
    using namespace attention_detail;
    backward_dkv<32, 64, 32, 2>(dk, dk_stride, dv, dv_stride, dout, dout_stride, lse, dsum, inputs(q, k, v, table, bucket_by_offset, key_lengths, q_stride, k_stride, v_stride, Tq, Tk, H, hs, causal, scale));
}
extern "C" __global__ void __launch_bounds__(128, 3) attention_backward_dkv_bf16_hs32(float* __restrict__ dq, float* __restrict__ dk, float* __restrict__ dv, float* __restrict__ dsum, const float* __restrict__ dout, const bf16* __restrict__ out, const float* __restrict__ lse, const bf16* __restrict__ q, const bf16* __restrict__ k, const bf16* __restrict__ v, const float* __restrict__ table, const int* __restrict__ bucket_by_offset, const int* __restrict__ key_lengths, int dq_stride, int dk_stride, int dv_stride, int dout_stride, int out_stride, int q_stride, int k_stride, int v_stride, int Tq, int Tk, int H, int hs, int causal, float scale) {
    using namespace attention_detail;
    backward_dkv<32, 64, 32, 2>(dk, dk_stride, dv, dv_stride, dout, dout_stride, lse, dsum, inputs(q, k, v, table, bucket_by_offset, key_lengths, q_stride, k_stride, v_stride, Tq, Tk, H, hs, causal, scale));
}
extern "C" __global__ void __launch_bounds__(128, 3) attention_backward_dkv_hs64(float* __restrict__ dq, float* __restrict__ dk, float* __restrict__ dv, float* __restrict__ dsum, const float* __restrict__ dout, const float* __restrict__ out, const float* __restrict__ lse, const float* __restrict__ q, const float* __restrict__ k, const float* __restrict__ v, const float* __restrict__ table, const int* __restrict__ bucket_by_offset, const int* __restrict__ key_lengths, int dq_stride, int dk_stride, int dv_stride, int dout_stride, int out_stride, int q_stride, int k_stride, int v_stride, int Tq, int Tk, int H, int hs, int causal, float scale) {
    using namespace attention_detail;
    backward_dkv<64, 64, 32, 1>(dk, dk_stride, dv, dv_stride, dout, dout_stride, lse, dsum, inputs(q, k, v, table, bucket_by_offset, key_lengths, q_stride, k_stride, v_stride, Tq, Tk, H, hs, causal, scale));
}
extern "C" __global__ void __launch_bounds__(128, 3) attention_backward_dkv_bf16_hs64(float* __restrict__ dq, float* __restrict__ dk, float* __restrict__ dv, float* __restrict__ dsum, const float* __restrict__ dout, const bf16* __restrict__ out, const float* __restrict__ lse, const bf16* __restrict__ q, const bf16* __restrict__ k, const bf16* __restrict__ v, const float* __restrict__ table, const int* __restrict__ bucket_by_offset, const int* __restrict__ key_lengths, int dq_stride, int dk_stride, int dv_stride, int dout_stride, int out_stride, int q_stride, int k_stride, int v_stride, int Tq, int Tk, int H, int hs, int causal, float scale) {
    using namespace attention_detail;
    backward_dkv<64, 64, 32, 1>(dk, dk_stride, dv, dv_stride, dout, dout_stride, lse, dsum, inputs(q, k, v, table, bucket_by_offset, key_lengths, q_stride, k_stride, v_stride, Tq, Tk, H, hs, causal, scale));
}
extern "C" __global__ void __launch_bounds__(128, 2) attention_backward_dkv_hs128(float* __restrict__ dq, float* __restrict__ dk, float* __restrict__ dv, float* __restrict__ dsum, const float* __restrict__ dout, const float* __restrict__ out, const float* __restrict__ lse, const float* __restrict__ q, const float* __restrict__ k, const float* __restrict__ v, const float* __restrict__ table, const int* __restrict__ bucket_by_offset, const int* __restrict__ key_lengths, int dq_stride, int dk_stride, int dv_stride, int dout_stride, int out_stride, int q_stride, int k_stride, int v_stride, int Tq, int Tk, int H, int hs, int causal, float scale) {
    using namespace attention_detail;
    backward_dkv<128, 32, 32, 2>(dk, dk_stride, dv, dv_stride, dout, dout_stride, lse, dsum, inputs(q, k, v, table, bucket_by_offset, key_lengths, q_stride, k_stride, v_stride, Tq, Tk, H, hs, causal, scale));
}
extern "C" __global__ void __launch_bounds__(128, 2) attention_backward_dkv_bf16_hs128(float* __restrict__ dq, float* __restrict__ dk, float* __restrict__ dv, float* __restrict__ dsum, const float* __restrict__ dout, const bf16* __restrict__ out, const float* __restrict__ lse, const bf16* __restrict__ q, const bf16* __restrict__ k, const bf16* __restrict__ v, const float* __restrict__ table, const int* __restrict__ bucket_by_offset, const int* __restrict__ key_lengths, int dq_stride, int dk_stride, int dv_stride, int dout_stride, int out_stride, int q_stride, int k_stride, int v_stride, int Tq, int Tk, int H, int hs, int causal, float scale) {
    using namespace attention_detail;
    backward_dkv<128, 32, 32, 2>(dk, dk_stride, dv, dv_stride, dout, dout_stride, lse, dsum, inputs(q, k, v, table, bucket_by_offset, key_lengths, q_stride, k_stride, v_stride, Tq, Tk, H, hs, causal, scale));
}

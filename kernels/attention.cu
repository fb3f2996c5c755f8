// attention.cu — fused causal multi-head self-attention, forward and backward, FlashAttention-2 style in fp32 SIMT.
// CPU reference: src/SoftPrompt/Cpu/AttentionOps.cs. Launchers: src/SoftPrompt/Cuda/Kernels/Attention.cs.
// Tests: tests/SoftPrompt.Tests/Kernels/AttentionKernelTests.cs.
//
// Layouts (hs = C / H, head h uses columns h·hs .. h·hs + hs − 1 of each section):
//   qkv  [B, T, 3C]  q in columns [0, C), k in [C, 2C), v in [2C, 3C)
//   out  [B, T, C]   out[b, i, h] = Σ_{j ≤ i} softmax_j(q_i·k_j · scale) v_j,  scale = 1/√hs (passed by the launcher)
//   lse  [B, H, T]   lse[b, h, i] = log Σ_{j ≤ i} exp(q_i·k_j · scale)  (natural log; all the backward needs)
//   dqkv [B, T, 3C]  backward output, every element written (no accumulation into the caller's buffer)
//
// Every kernel is a template over the head size padded to D ∈ {16, 32, 64, 128} (columns hs..D−1 of a tile are
// zero in shared memory, so any hs in 1..128 works) and is instantiated once per D as an extern "C" entry; the
// launcher picks D and the tile sizes. No T×T matrix ever reaches global memory: the forward keeps a running
// max / sum per row (online softmax) and saves lse; the backward recomputes P = exp(q·k·scale − lse).
// The backward is deterministic: no atomics; each output element is summed by one thread in a fixed order.
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

namespace attention_detail {

constexpr int kThreads = 128;
constexpr float kLog2e = 1.4426950408889634f;

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

// True when every pointer is 16-byte aligned and hs, C are multiples of 4: then each head row starts 16-byte
// aligned and tiles move as float4. Otherwise the kernels use scalar loads and stores (same results).
__device__ __forceinline__ bool vector_ok(const void* a, const void* b, const void* c, const void* d, int hs, int C) {
    const unsigned long long bits = reinterpret_cast<unsigned long long>(a) | reinterpret_cast<unsigned long long>(b) |
                                    reinterpret_cast<unsigned long long>(c) | reinterpret_cast<unsigned long long>(d);
    return (bits & 15ull) == 0 && (hs & 3) == 0 && (C & 3) == 0;
}

// dst[r][c] (stride LD) = src[r·stride + c] for r < rows, c < hs; 0 for the padding (r < ROWS, c < D).
template <int ROWS, int D, int LD>
__device__ __forceinline__ void load_tile(float* __restrict__ dst, const float* __restrict__ src, int stride, int rows,
                                          int hs, bool vec) {
    constexpr int kChunks = D / 4;
    static_assert((ROWS * kChunks) % kThreads == 0, "tile chunks must be a multiple of the block size");
#pragma unroll
    for (int it = 0; it < ROWS * kChunks / kThreads; ++it) {
        const int idx = it * kThreads + static_cast<int>(threadIdx.x);
        const int r = idx / kChunks, c = (idx % kChunks) * 4;
        float4 v = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
        if (r < rows && c < hs) {
            const float* p = src + r * stride + c;
            if (vec) {
                v = load_float4(p);
            } else {
                v.x = p[0];
                if (c + 1 < hs) v.y = p[1];
                if (c + 2 < hs) v.z = p[2];
                if (c + 3 < hs) v.w = p[3];
            }
        }
        store_float4(dst + r * LD + c, v);
    }
}

// Score micro-tile, "A·Bᵀ": acc[i][j] += Σ_{k < K} A[row0 + 4i][k] · B[cg + 8j][k]. A, B in shared memory.
template <int RM, int RN, int K, int LDA, int LDB>
__device__ __forceinline__ void mma_nt(float (&acc)[RM][RN], const float* __restrict__ A, const float* __restrict__ B,
                                       Layout t) {
    static_assert(K % 4 == 0 && LDA % 4 == 0 && LDB % 4 == 0, "float4 operands");
#pragma unroll 2
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

template <int W>
__device__ __forceinline__ void load_vec(float (&v)[W], const float* p) {
    static_assert(W == 2 || W == 4, "vector width");
    if constexpr (W == 4) {
        const float4 x = load_float4(p);
        v[0] = x.x; v[1] = x.y; v[2] = x.z; v[3] = x.w;
    } else {
        const float2 x = load_float2(p);
        v[0] = x.x; v[1] = x.y;
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
        for (int i = 0; i < RM; ++i) {
            const float4 v = load_float4(A + (t.row0 + 4 * i) * LDA + k);
            a[i][0] = v.x; a[i][1] = v.y; a[i][2] = v.z; a[i][3] = v.w;
        }
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

// dst[W·cg + 8W·j + w] = v[W·j + w] · mul for the columns < hs (one row of an output tile).
template <int W, int J>
__device__ __forceinline__ void store_row(float* __restrict__ dst, const float (&v)[W * J], float mul, int cg, int hs,
                                          bool vec) {
#pragma unroll
    for (int j = 0; j < J; ++j) {
        const int c = W * cg + 8 * W * j;
        if (vec) {
            if (c < hs) {  // hs % 4 == 0, so the whole vector is inside the head
                if constexpr (W == 4)
                    store_float4(dst + c, make_float4(v[4 * j] * mul, v[4 * j + 1] * mul, v[4 * j + 2] * mul, v[4 * j + 3] * mul));
                else
                    store_float2(dst + c, make_float2(v[2 * j] * mul, v[2 * j + 1] * mul));
            }
        } else {
#pragma unroll
            for (int w = 0; w < W; ++w)
                if (c + w < hs) dst[c + w] = v[W * j + w] * mul;
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
// Block: BR = 64 query rows [q0, q0 + 64) of one (b, h); loops over key tiles of BC rows from 0 to the causal
// limit. Shared memory (floats): Q [64][D+4], K [BC][D+4], V [BC][D+4], P [64][BC+8].
template <int D, int BC>
__device__ __forceinline__ void forward(float* __restrict__ out, float* __restrict__ lse, const float* __restrict__ qkv,
                                        int T, int C, int H, float scale) {
    constexpr int BR = 64, RM = BR / 16, RN = BC / 8, LD = D + 4, LDP = BC + 8;
    constexpr int W = OutputVector<D>::W, J = OutputVector<D>::J;
    float* sQ = dynamic_smem<float>();
    float* sK = sQ + BR * LD;
    float* sV = sK + BC * LD;
    float* sP = sV + BC * LD;
    const Layout t = layout<RM>();
    const int hs = C / H, C3 = 3 * C, bh = static_cast<int>(blockIdx.y), b = bh / H, h = bh - b * H;
    const int q0 = (static_cast<int>(gridDim.x) - 1 - static_cast<int>(blockIdx.x)) * BR;  // longest rows first
    const bool vec = vector_ok(qkv, out, qkv, out, hs, C);
    const float* head = qkv + static_cast<long long>(b) * T * C3 + h * hs;
    const float c1 = scale * kLog2e;  // exp(x·scale) = exp2(x·c1)

    load_tile<BR, D, LD>(sQ, head + static_cast<long long>(q0) * C3, C3, min(BR, T - q0), hs, vec);

    float o[RM][W * J], m[RM], l[RM];  // l: this thread's part of the row sum (its columns), reduced at the end
#pragma unroll
    for (int i = 0; i < RM; ++i) {
        m[i] = -INFINITY;
        l[i] = 0.0f;
#pragma unroll
        for (int n = 0; n < W * J; ++n) o[i][n] = 0.0f;
    }

    const int key_end = min(q0 + BR, T);  // keys 0 .. key_end − 1 are visible to some row of the block
    for (int k0 = 0; k0 < key_end; k0 += BC) {
        __syncthreads();  // the previous tile's K, V (and the Q load) are done with
        load_tile<BC, D, LD>(sK, head + C + static_cast<long long>(k0) * C3, C3, min(BC, T - k0), hs, vec);
        load_tile<BC, D, LD>(sV, head + 2 * C + static_cast<long long>(k0) * C3, C3, min(BC, T - k0), hs, vec);
        __syncthreads();

        float s[RM][RN];
#pragma unroll
        for (int i = 0; i < RM; ++i)
#pragma unroll
            for (int j = 0; j < RN; ++j) s[i][j] = 0.0f;
        mma_nt<RM, RN, D, LD, LD>(s, sQ, sK, t);

        if (k0 + BC - 1 > q0 || k0 + BC > T) {  // the tile crosses the diagonal or the end of the sequence
#pragma unroll
            for (int i = 0; i < RM; ++i)
#pragma unroll
                for (int j = 0; j < RN; ++j) {
                    const int row = q0 + t.row0 + 4 * i, col = k0 + t.cg + 8 * j;
                    if (col > row || col >= T) s[i][j] = -INFINITY;
                }
        }
        // Online softmax. Key tile 0 always holds column 0 ≤ row, so m is finite from the first tile on.
#pragma unroll
        for (int i = 0; i < RM; ++i) {
            float mx = s[i][0];
#pragma unroll
            for (int j = 1; j < RN; ++j) mx = fmaxf(mx, s[i][j]);
            const float m_new = fmaxf(m[i], row_group_max(mx));
            const float alpha = exp2f((m[i] - m_new) * c1);  // 0 on the first tile (m = −∞)
            const float mc = m_new * c1;
            float rs = 0.0f;
#pragma unroll
            for (int j = 0; j < RN; ++j) {
                const float p = exp2f(fmaf(s[i][j], c1, -mc));
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
        if (row < T) {
            store_row<W, J>(out + (static_cast<long long>(b) * T + row) * C + h * hs, o[i], 1.0f / sum, t.cg, hs, vec);
            if (t.cg == 0) lse[static_cast<long long>(bh) * T + row] = m[i] * scale + logf(sum);
        }
    }
}

// ── backward: dQ (and D = rowsum(dout ∘ out)) ──
// Block: BR query rows [q0, q0 + BR) of one (b, h); loops over key tiles of BC rows from 0 to the causal limit.
// Shared memory (floats): Q [BR][D+4], dO [BR][D+4], K [BC][D+4], V [BC][D+4], dS [BR][BC+8].
template <int D, int BR, int BC>
__device__ __forceinline__ void backward_dq(float* __restrict__ dqkv, float* __restrict__ dsum,
                                            const float* __restrict__ dout, const float* __restrict__ qkv,
                                            const float* __restrict__ out, const float* __restrict__ lse, int T, int C,
                                            int H, float scale) {
    constexpr int RM = BR / 16, RN = BC / 8, LD = D + 4, LDS = BC + 8;
    constexpr int W = OutputVector<D>::W, J = OutputVector<D>::J;
    float* sQ = dynamic_smem<float>();
    float* sdO = sQ + BR * LD;
    float* sK = sdO + BR * LD;
    float* sV = sK + BC * LD;
    float* sdS = sV + BC * LD;
    const Layout t = layout<RM>();
    const int hs = C / H, C3 = 3 * C, bh = static_cast<int>(blockIdx.y), b = bh / H, h = bh - b * H;
    const int q0 = (static_cast<int>(gridDim.x) - 1 - static_cast<int>(blockIdx.x)) * BR;  // longest rows first
    const bool vec = vector_ok(qkv, dqkv, dout, out, hs, C);
    const float* head = qkv + static_cast<long long>(b) * T * C3 + h * hs;
    const long long row_base = static_cast<long long>(b) * T;  // row (b, 0) of out / dout
    const float c1 = scale * kLog2e;
    const int rows = min(BR, T - q0);

    load_tile<BR, D, LD>(sQ, head + static_cast<long long>(q0) * C3, C3, rows, hs, vec);
    load_tile<BR, D, LD>(sdO, dout + (row_base + q0) * C + h * hs, C, rows, hs, vec);
    __syncthreads();

    // Per owned row: D_i = dout_i · out_i (saved for the dK/dV kernel) and lse_i in base 2.
    float di[RM], lse2[RM];
#pragma unroll
    for (int i = 0; i < RM; ++i) {
        const int r = t.row0 + 4 * i, row = q0 + r;
        float d = 0.0f;
        if (row < T) {
            const float* o_row = out + (row_base + row) * C + h * hs;
            for (int c = t.cg; c < hs; c += 8) d = fmaf(sdO[r * LD + c], o_row[c], d);
        }
        d = row_group_sum(d);
        di[i] = d;
        lse2[i] = row < T ? lse[static_cast<long long>(bh) * T + row] * kLog2e : 0.0f;
        if (row < T && t.cg == 0) dsum[static_cast<long long>(bh) * T + row] = d;
    }

    float dq[RM][W * J];
#pragma unroll
    for (int i = 0; i < RM; ++i)
#pragma unroll
        for (int n = 0; n < W * J; ++n) dq[i][n] = 0.0f;

    const int key_end = min(q0 + BR, T);
    for (int k0 = 0; k0 < key_end; k0 += BC) {
        __syncthreads();
        load_tile<BC, D, LD>(sK, head + C + static_cast<long long>(k0) * C3, C3, min(BC, T - k0), hs, vec);
        load_tile<BC, D, LD>(sV, head + 2 * C + static_cast<long long>(k0) * C3, C3, min(BC, T - k0), hs, vec);
        __syncthreads();

        float s[RM][RN], dp[RM][RN];
#pragma unroll
        for (int i = 0; i < RM; ++i)
#pragma unroll
            for (int j = 0; j < RN; ++j) s[i][j] = dp[i][j] = 0.0f;
        mma_nt<RM, RN, D, LD, LD>(s, sQ, sK, t);    // q_i · k_j
        mma_nt<RM, RN, D, LD, LD>(dp, sdO, sV, t);  // dout_i · v_j

        const bool masked = k0 + BC - 1 > q0 || k0 + BC > T;
#pragma unroll
        for (int i = 0; i < RM; ++i)
#pragma unroll
            for (int j = 0; j < RN; ++j) {
                const int row = q0 + t.row0 + 4 * i, col = k0 + t.cg + 8 * j;
                float p = exp2f(fmaf(s[i][j], c1, -lse2[i]));
                if (masked && (col > row || col >= T)) p = 0.0f;
                sdS[(t.row0 + 4 * i) * LDS + t.cg + 8 * j] = p * (dp[i][j] - di[i]);
            }
        __syncwarp();  // dS rows are warp-private
        mma_nn<RM, W, J, BC, LDS, LD>(dq, sdS, sK, t);
    }

#pragma unroll
    for (int i = 0; i < RM; ++i) {
        const int row = q0 + t.row0 + 4 * i;
        if (row < T) store_row<W, J>(dqkv + (row_base + row) * C3 + h * hs, dq[i], scale, t.cg, hs, vec);
    }
}

// ── backward: dK, dV ──
// Block: BC key rows [k0, k0 + BC) of one (b, h); loops over query tiles of BR rows from the one holding row k0 to
// the end. Works on transposed score tiles (rows = keys, columns = queries). Shared memory (floats):
// K [BC][D+4], V [BC][D+4], Q [BR][D+4], dO [BR][D+4], Pᵀ [BC][BR+8], dSᵀ [BC][BR+8], lse·log2(e) [BR], D [BR].
template <int D, int BC, int BR>
__device__ __forceinline__ void backward_dkv(float* __restrict__ dqkv, const float* __restrict__ dout,
                                             const float* __restrict__ qkv, const float* __restrict__ lse,
                                             const float* __restrict__ dsum, int T, int C, int H, float scale) {
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
    const Layout t = layout<RM>();
    const int hs = C / H, C3 = 3 * C, bh = static_cast<int>(blockIdx.y), b = bh / H, h = bh - b * H;
    const int k0 = static_cast<int>(blockIdx.x) * BC;  // the first key tiles see the most queries: they start first
    const bool vec = vector_ok(qkv, dqkv, dout, dout, hs, C);
    const float* head = qkv + static_cast<long long>(b) * T * C3 + h * hs;
    const long long row_base = static_cast<long long>(b) * T;
    const long long stat_base = static_cast<long long>(bh) * T;
    const float c1 = scale * kLog2e;

    load_tile<BC, D, LD>(sK, head + C + static_cast<long long>(k0) * C3, C3, min(BC, T - k0), hs, vec);
    load_tile<BC, D, LD>(sV, head + 2 * C + static_cast<long long>(k0) * C3, C3, min(BC, T - k0), hs, vec);

    float dk[RM][W * J], dv[RM][W * J];
#pragma unroll
    for (int i = 0; i < RM; ++i)
#pragma unroll
        for (int n = 0; n < W * J; ++n) dk[i][n] = dv[i][n] = 0.0f;

    for (int q0 = (k0 / BR) * BR; q0 < T; q0 += BR) {
        __syncthreads();
        const int rows = min(BR, T - q0);
        load_tile<BR, D, LD>(sQ, head + static_cast<long long>(q0) * C3, C3, rows, hs, vec);
        load_tile<BR, D, LD>(sdO, dout + (row_base + q0) * C + h * hs, C, rows, hs, vec);
        for (int r = static_cast<int>(threadIdx.x); r < BR; r += kThreads) {
            sL[r] = r < rows ? lse[stat_base + q0 + r] * kLog2e : 0.0f;
            sD[r] = r < rows ? dsum[stat_base + q0 + r] : 0.0f;
        }
        __syncthreads();

        float s[RM][RN], dp[RM][RN];
#pragma unroll
        for (int i = 0; i < RM; ++i)
#pragma unroll
            for (int j = 0; j < RN; ++j) s[i][j] = dp[i][j] = 0.0f;
        mma_nt<RM, RN, D, LD, LD>(s, sK, sQ, t);    // k_i · q_j
        mma_nt<RM, RN, D, LD, LD>(dp, sV, sdO, t);  // v_i · dout_j

        const bool masked = q0 < k0 + BC - 1 || q0 + BR > T;
#pragma unroll
        for (int i = 0; i < RM; ++i)
#pragma unroll
            for (int j = 0; j < RN; ++j) {
                const int key = k0 + t.row0 + 4 * i, r = t.cg + 8 * j, query = q0 + r;
                float p = exp2f(fmaf(s[i][j], c1, -sL[r]));
                if (masked && (query < key || query >= T)) p = 0.0f;
                sP[(t.row0 + 4 * i) * LDS + r] = p;
                sdS[(t.row0 + 4 * i) * LDS + r] = p * (dp[i][j] - sD[r]);
            }
        __syncwarp();  // Pᵀ and dSᵀ rows are warp-private
        mma_nn<RM, W, J, BR, LDS, LD>(dv, sP, sdO, t);
        mma_nn<RM, W, J, BR, LDS, LD>(dk, sdS, sQ, t);
    }

#pragma unroll
    for (int i = 0; i < RM; ++i) {
        const int key = k0 + t.row0 + 4 * i;
        if (key < T) {
            float* row = dqkv + (row_base + key) * C3 + h * hs;
            store_row<W, J>(row + C, dk[i], scale, t.cg, hs, vec);
            store_row<W, J>(row + 2 * C, dv[i], 1.0f, t.cg, hs, vec);
        }
    }
}

}  // namespace attention_detail

// attention_forward_hs{16,32,64,128} — causal attention forward for head sizes padded to 16 / 32 / 64 / 128.
//   out: [B, T, C] fp32 (written for every row and this head's columns); lse: [B, H, T] fp32 (saved for the
//   backward: natural-log logsumexp of the scaled scores); qkv: [B, T, 3C] fp32; T ≥ 1, C = H·hs, hs ≤ D;
//   scale = 1/√hs.
//   Grid: (ceil(T / 64), B·H); block: 128 threads; block x handles query rows [q0, q0 + 64) with
//   q0 = (gridDim.x − 1 − x)·64 (the longest rows start first) of head blockIdx.y = b·H + h.
//   Key tiles: 64 rows (D ≤ 64) or 32 (D = 128); per thread micro-tiles of 4 rows × BC/8 scores and 4 rows × D/8
//   outputs. Tiles right of the diagonal are never loaded; only tiles crossing it (or T) are masked.
//   Dynamic shared memory: 4·(64·(D+4) + 2·BC·(D+4) + 64·(BC+8)) bytes (33,792 / 46,080 / 70,656 / 77,824).
extern "C" __global__ void __launch_bounds__(128, 4) attention_forward_hs16(float* __restrict__ out, float* __restrict__ lse, const float* __restrict__ qkv, int T, int C, int H, float scale) {
    attention_detail::forward<16, 64>(out, lse, qkv, T, C, H, scale);
}
extern "C" __global__ void __launch_bounds__(128, 3) attention_forward_hs32(float* __restrict__ out, float* __restrict__ lse, const float* __restrict__ qkv, int T, int C, int H, float scale) {
    attention_detail::forward<32, 64>(out, lse, qkv, T, C, H, scale);
}
extern "C" __global__ void __launch_bounds__(128, 3) attention_forward_hs64(float* __restrict__ out, float* __restrict__ lse, const float* __restrict__ qkv, int T, int C, int H, float scale) {
    attention_detail::forward<64, 64>(out, lse, qkv, T, C, H, scale);
}
extern "C" __global__ void __launch_bounds__(128, 2) attention_forward_hs128(float* __restrict__ out, float* __restrict__ lse, const float* __restrict__ qkv, int T, int C, int H, float scale) {
    attention_detail::forward<128, 32>(out, lse, qkv, T, C, H, scale);
}

// attention_backward_dq_hs{16,32,64,128} — backward, step 1: dq and D = rowsum(dout ∘ out).
//   dqkv: [B, T, 3C] fp32 — writes the q section (columns [0, C)) of every row; dsum: [B, H, T] fp32 scratch —
//   writes D_i = dout_i · out_i (read by the dK/dV kernel); dout, out: [B, T, C]; qkv: [B, T, 3C]; lse: [B, H, T]
//   from the forward; scale = 1/√hs.
//   Grid: (ceil(T / BR), B·H) with BR = 64 (D ≤ 64) or 32 (D = 128); block: 128 threads; block x handles query rows
//   [q0, q0 + BR), q0 = (gridDim.x − 1 − x)·BR, and loops over key tiles of 32 rows up to the diagonal:
//   P = exp(q·k·scale − lse) and dP = dout·vᵀ recomputed, dS = P ∘ (dP − D), dq += dS·k·scale — summed by one
//   thread per element in key order (deterministic). Micro-tiles: RM = BR/16 rows × 4 scores, RM rows × D/8 outputs.
//   Dynamic shared memory: 4·(2·BR·(D+4) + 2·32·(D+4) + BR·40) bytes (25,600 / 37,888 / 62,464 / 72,704).
extern "C" __global__ void __launch_bounds__(128, 4) attention_backward_dq_hs16(float* __restrict__ dqkv, float* __restrict__ dsum, const float* __restrict__ dout, const float* __restrict__ qkv, const float* __restrict__ out, const float* __restrict__ lse, int T, int C, int H, float scale) {
    attention_detail::backward_dq<16, 64, 32>(dqkv, dsum, dout, qkv, out, lse, T, C, H, scale);
}
extern "C" __global__ void __launch_bounds__(128, 4) attention_backward_dq_hs32(float* __restrict__ dqkv, float* __restrict__ dsum, const float* __restrict__ dout, const float* __restrict__ qkv, const float* __restrict__ out, const float* __restrict__ lse, int T, int C, int H, float scale) {
    attention_detail::backward_dq<32, 64, 32>(dqkv, dsum, dout, qkv, out, lse, T, C, H, scale);
}
extern "C" __global__ void __launch_bounds__(128, 3) attention_backward_dq_hs64(float* __restrict__ dqkv, float* __restrict__ dsum, const float* __restrict__ dout, const float* __restrict__ qkv, const float* __restrict__ out, const float* __restrict__ lse, int T, int C, int H, float scale) {
    attention_detail::backward_dq<64, 64, 32>(dqkv, dsum, dout, qkv, out, lse, T, C, H, scale);
}
extern "C" __global__ void __launch_bounds__(128, 3) attention_backward_dq_hs128(float* __restrict__ dqkv, float* __restrict__ dsum, const float* __restrict__ dout, const float* __restrict__ qkv, const float* __restrict__ out, const float* __restrict__ lse, int T, int C, int H, float scale) {
    attention_detail::backward_dq<128, 32, 32>(dqkv, dsum, dout, qkv, out, lse, T, C, H, scale);
}

// attention_backward_dkv_hs{16,32,64,128} — backward, step 2 (after dq): dk and dv.
//   dqkv: [B, T, 3C] fp32 — writes the k and v sections (columns [C, 3C)) of every row; dout: [B, T, C];
//   qkv: [B, T, 3C]; lse: [B, H, T]; dsum: [B, H, T] (D from the dq kernel); scale = 1/√hs.
//   Grid: (ceil(T / BC), B·H) with BC = 64 (D ≤ 64) or 32 (D = 128); block: 128 threads; block x handles key rows
//   [x·BC, x·BC + BC) and loops over query tiles of 32 rows from the one holding its first key to T:
//   Pᵀ and dPᵀ = v·doutᵀ recomputed, dSᵀ = Pᵀ ∘ (dPᵀ − D), dv += Pᵀ·dout, dk += dSᵀ·q·scale — one thread per
//   element, query order (deterministic). Micro-tiles: RM = BC/16 key rows × 4 queries, RM rows × D/8 outputs.
//   Dynamic shared memory: 4·(2·BC·(D+4) + 2·32·(D+4) + 2·BC·40 + 64) bytes (36,096 / 48,384 / 72,960 / 78,080).
extern "C" __global__ void __launch_bounds__(128, 4) attention_backward_dkv_hs16(float* __restrict__ dqkv, const float* __restrict__ dout, const float* __restrict__ qkv, const float* __restrict__ lse, const float* __restrict__ dsum, int T, int C, int H, float scale) {
    attention_detail::backward_dkv<16, 64, 32>(dqkv, dout, qkv, lse, dsum, T, C, H, scale);
}
extern "C" __global__ void __launch_bounds__(128, 3) attention_backward_dkv_hs32(float* __restrict__ dqkv, const float* __restrict__ dout, const float* __restrict__ qkv, const float* __restrict__ lse, const float* __restrict__ dsum, int T, int C, int H, float scale) {
    attention_detail::backward_dkv<32, 64, 32>(dqkv, dout, qkv, lse, dsum, T, C, H, scale);
}
extern "C" __global__ void __launch_bounds__(128, 3) attention_backward_dkv_hs64(float* __restrict__ dqkv, const float* __restrict__ dout, const float* __restrict__ qkv, const float* __restrict__ lse, const float* __restrict__ dsum, int T, int C, int H, float scale) {
    attention_detail::backward_dkv<64, 64, 32>(dqkv, dout, qkv, lse, dsum, T, C, H, scale);
}
extern "C" __global__ void __launch_bounds__(128, 2) attention_backward_dkv_hs128(float* __restrict__ dqkv, const float* __restrict__ dout, const float* __restrict__ qkv, const float* __restrict__ lse, const float* __restrict__ dsum, int T, int C, int H, float scale) {
    attention_detail::backward_dkv<128, 32, 32>(dqkv, dout, qkv, lse, dsum, T, C, H, scale);
}

// decoding.cu — KV-cached decoding on a device: the step's embeddings at each row's own position, appending a step's
// keys and values to the cache, and decode attention (flash-decoding: one query row per (row, head) against its cached
// keys, split over the key length, then a combine). Mirrors the CPU engines' cached decoding (CpuDecodingSession).
// Launchers: src/SoftPrompt/Cuda/Kernels/Decoding.cs. Tests: tests/SoftPrompt.Tests/Kernels/DecodingKernelTests.cs.
//
// The cache: per layer K and V [cache_rows, cache_stride], kv head g at columns g·head_size. A query row's keys are
// described by its key range, four ints (prefix_start, prefix_length, own_start, key_length): key j < prefix_length lies
// at cache row prefix_start + j (its prompt's rows, computed once and shared), key j ≥ prefix_length at own_start +
// (j − prefix_length) (the slot's own rows). Key length = the row's position + 1, so attention is causal by
// construction: a row sees every earlier position and itself, never a later one.
#include "common.cuh"
#include "kernel_helpers.cuh"

namespace decoding_detail {

constexpr int kWarps = 4;

// Cache row of key j of a row whose range is r[0..3].
__device__ __forceinline__ int key_row(const int* r, int j) { return j < r[1] ? r[0] + j : r[2] + (j - r[1]); }

// This lane's CPL contiguous channels [c0, c0 + CPL) of a head vector at p (zeros past head_size): one float2/float4
// access per lane where `vec` (head_size == 32·CPL, rows 16-byte aligned), so a warp reads the row in one sweep.
template <int CPL>
__device__ __forceinline__ void load_lane(float (&x)[CPL], const float* p, int c0, int head_size, bool vec) {
    if constexpr (CPL == 2 || CPL == 4) {
        if (vec) {
            load_vec<CPL>(x, p + c0);
            return;
        }
    } else if constexpr (CPL == 8) {
        if (vec) {
            float lo[4], hi[4];
            load_vec<4>(lo, p + c0);
            load_vec<4>(hi, p + c0 + 4);
#pragma unroll
            for (int i = 0; i < 4; i++) { x[i] = lo[i]; x[i + 4] = hi[i]; }
            return;
        }
    }
#pragma unroll
    for (int i = 0; i < CPL; i++) x[i] = c0 + i < head_size ? p[c0 + i] : 0.0f;
}

// One block: query row (row, head) against keys [split·split_size, min(+split_size, key_length)). Each warp takes every
// kWarps-th key with an online softmax of its own (running max m, sum l, unnormalised output acc); the warps then merge
// in shared memory into the split's (max, sum, output), which decode_attention_combine merges across splits.
template <int TILE>
__device__ __forceinline__ void split(float* __restrict__ partial_out, float* __restrict__ partial_max, float* __restrict__ partial_sum,
                                      const float* __restrict__ q, const float* __restrict__ k_cache, const float* __restrict__ v_cache,
                                      const int* __restrict__ row_keys, const float* __restrict__ distance_bias, int bias_distances, int rows,
                                      int heads, int kv_heads, int head_size, int q_stride, int cache_stride, int cache_rows, int split_size,
                                      int splits, float scale) {
    constexpr int CPL = TILE / SP_WARP_SIZE;
    const int row_head = static_cast<int>(blockIdx.x), s = static_cast<int>(blockIdx.y);
    const int row = row_head / heads, head = row_head - row * heads;
    if (row >= rows) return;
    const int* r = row_keys + 4 * row;
    const int key_length = ldg(r + 3);
    const int begin = s * split_size;
    if (begin >= key_length) return;  // the whole block: a shorter row uses fewer splits
    assert(key_length >= 1 && key_length <= splits * split_size);
    const int end = min(begin + split_size, key_length);
    const int kv_head = head / (heads / kv_heads);  // a grouped query head reads its kv head in place
    const int lane = static_cast<int>(lane_id()), warp = static_cast<int>(warp_id());
    const int c0 = lane * CPL;
    const bool vec = head_size == TILE && (cache_stride & 3) == 0 && aligned16(k_cache) && aligned16(v_cache);
    const bool qvec = head_size == TILE && (q_stride & 3) == 0 && aligned16(q);

    float qv[CPL], acc[CPL];
    load_lane<CPL>(qv, q + static_cast<long long>(row) * q_stride + head * head_size, c0, head_size, qvec);
#pragma unroll
    for (int i = 0; i < CPL; i++) acc[i] = 0.0f;
    float m = -INFINITY, l = 0.0f;
    const float* head_bias = distance_bias != nullptr ? distance_bias + static_cast<long long>(head) * bias_distances : nullptr;
    assert(head_bias == nullptr || key_length <= bias_distances);
    for (int j = begin + warp; j < end; j += kWarps) {
        const int cr = key_row(r, j);
        assert(cr >= 0 && cr < cache_rows);
        const long long at = static_cast<long long>(cr) * cache_stride + kv_head * head_size;
        float kv[CPL];
        load_lane<CPL>(kv, k_cache + at, c0, head_size, vec);
        float dot = 0.0f;
#pragma unroll
        for (int i = 0; i < CPL; i++) dot += qv[i] * kv[i];
        float score = warp_reduce_sum(dot) * scale;
        if (head_bias != nullptr) score += ldg(head_bias + (key_length - 1 - j));  // the key's distance back from the query
        const float m_new = fmaxf(m, score);
        const float correction = expf(m - m_new), p = expf(score - m_new);
        l = l * correction + p;
        load_lane<CPL>(kv, v_cache + at, c0, head_size, vec);
#pragma unroll
        for (int i = 0; i < CPL; i++) acc[i] = acc[i] * correction + p * kv[i];
        m = m_new;
    }

    SHARED(float, warp_max, kWarps);
    SHARED(float, warp_sum, kWarps);
    SHARED2D(float, warp_acc, kWarps, TILE);
    if (lane == 0) { warp_max[warp] = m; warp_sum[warp] = l; }
#pragma unroll
    for (int i = 0; i < CPL; i++) warp_acc[warp][c0 + i] = acc[i];
    __syncthreads();
    float block_max = warp_max[0];  // warp 0 always has the split's first key, so the max is finite
    for (int w = 1; w < kWarps; w++) block_max = fmaxf(block_max, warp_max[w]);
    const long long slot = static_cast<long long>(row_head) * splits + s;
    for (int c = static_cast<int>(threadIdx.x); c < head_size; c += static_cast<int>(blockDim.x)) {
        float o = 0.0f;
        for (int w = 0; w < kWarps; w++) o += warp_acc[w][c] * expf(warp_max[w] - block_max);  // exp(−inf) = 0 for an idle warp
        partial_out[slot * head_size + c] = o;
    }
    if (threadIdx.x == 0) {
        float sum = 0.0f;
        for (int w = 0; w < kWarps; w++) sum += warp_sum[w] * expf(warp_max[w] - block_max);
        partial_max[slot] = block_max;
        partial_sum[slot] = sum;
    }
}

}  // namespace decoding_detail

// decode_embedding — each step row's input: a token's embedding or a prompt vector, plus the position embedding at the
// row's own position (GPT-2's wpe; none for RoPE models).
//   x: [rows, C] out; tokens: [rows] int, a token id, or −1 for a prompt row; prompt_rows: [rows] int, the row of
//   prompts [prompt_row_count, C] a prompt row copies (read only where tokens[i] < 0); positions: [rows] int, the row
//   of wpe [position_count, C] added, or wpe null (nothing added); wte: [vocab, C].
//   x[i] = (tokens[i] ≥ 0 ? wte[tokens[i]] : prompts[prompt_rows[i]]) + wpe[positions[i]]: one add per element, so the
//   values are the full forward's (embedding_forward) bit for bit.
//   Grid: ceil(rows / 8); block: 256 threads, one warp per row, lanes striding the channels. Saves nothing.
extern "C" __global__ void __launch_bounds__(256) decode_embedding(float* __restrict__ x, const int* __restrict__ tokens, const int* __restrict__ prompt_rows, const int* __restrict__ positions, const float* __restrict__ prompts, const float* __restrict__ wte, const float* __restrict__ wpe, int rows, int channels, int prompt_row_count, int vocab, int position_count) {
    const int i = grid_warp();
    if (i >= rows) return;
    const int token = ldg(tokens + i);
    const float* src;
    if (token >= 0) {
        assert(token < vocab);
        src = wte + static_cast<long long>(token) * channels;
    } else {
        const int p = ldg(prompt_rows + i);
        assert(p >= 0 && p < prompt_row_count);
        src = prompts + static_cast<long long>(p) * channels;
    }
    const float* pos = nullptr;
    if (wpe != nullptr) {
        const int t = ldg(positions + i);
        assert(t >= 0 && t < position_count);
        pos = wpe + static_cast<long long>(t) * channels;
    }
    float* out = x + static_cast<long long>(i) * channels;
    for (int c = static_cast<int>(lane_id()); c < channels; c += SP_WARP_SIZE) out[c] = pos != nullptr ? src[c] + pos[c] : src[c];
}

// kv_cache_append — writes each step row's key and value into the cache at its own next row: own_start + key_length −
// 1 − prefix_length (the row's position within its own rows), from its key range (see the top of this file).
//   k_cache, v_cache: [cache_rows, cache_stride] in/out; k, v: [rows, ·] at row strides k_stride, v_stride (the column
//   slices of a fused q|k|v projection are fine); row_keys: [rows, 4]; width ≤ cache_stride columns copied.
//   Grid: ceil(rows / 8); block: 256 threads, one warp per row. Exact copies.
extern "C" __global__ void __launch_bounds__(256) kv_cache_append(float* __restrict__ k_cache, float* __restrict__ v_cache, const float* __restrict__ k, const float* __restrict__ v, const int* __restrict__ row_keys, int rows, int width, int k_stride, int v_stride, int cache_stride, int cache_rows) {
    const int i = grid_warp();
    if (i >= rows) return;
    const int* r = row_keys + 4 * i;
    const int own = ldg(r + 3) - 1 - ldg(r + 1);
    assert(own >= 0);
    const int cr = ldg(r + 2) + own;
    assert(cr >= 0 && cr < cache_rows);
    float* kd = k_cache + static_cast<long long>(cr) * cache_stride;
    float* vd = v_cache + static_cast<long long>(cr) * cache_stride;
    const float* ks = k + static_cast<long long>(i) * k_stride;
    const float* vs = v + static_cast<long long>(i) * v_stride;
    for (int c = static_cast<int>(lane_id()); c < width; c += SP_WARP_SIZE) {
        kd[c] = ks[c];
        vd[c] = vs[c];
    }
}

// decode_attention_split_hs{32,64,128,256} — decode attention, step 1: one split of one query row's keys.
//   partial_out: [rows, heads, splits, head_size] out (unnormalised Σ p·v of the split, p = exp(score − split max));
//   partial_max, partial_sum: [rows, heads, splits] out (the split's max score and Σ p); written only for splits that
//   hold keys (split < ceil(key_length / split_size)). q: [rows, ·] at row stride q_stride, head h at columns
//   h·head_size; k_cache, v_cache: [cache_rows, cache_stride], kv head g at g·head_size; row_keys: [rows, 4] key ranges;
//   heads a multiple of kv_heads (query head h reads kv head h / (heads / kv_heads)); head_size ≤ the tile; scale
//   multiplies q·k; key_length ≤ splits·split_size. distance_bias: [heads, bias_distances] or null — when given, score
//   j of head h adds distance_bias[h, key_length − 1 − j] (T5's relative bias of a key that far before its query; every
//   key_length ≤ bias_distances). fp32 throughout.
//   Grid: (rows·heads, splits); block: 128 threads = 4 warps, warp w takes keys begin + w, begin + w + 4, …, each lane
//   tile/32 contiguous channels. Static shared memory: 4·(8 + 4·tile) bytes. Saves nothing (inference only).
extern "C" __global__ void __launch_bounds__(128) decode_attention_split_hs32(float* __restrict__ partial_out, float* __restrict__ partial_max, float* __restrict__ partial_sum, const float* __restrict__ q, const float* __restrict__ k_cache, const float* __restrict__ v_cache, const int* __restrict__ row_keys, const float* __restrict__ distance_bias, int bias_distances, int rows, int heads, int kv_heads, int head_size, int q_stride, int cache_stride, int cache_rows, int split_size, int splits, float scale) {
    decoding_detail::split<32>(partial_out, partial_max, partial_sum, q, k_cache, v_cache, row_keys, distance_bias, bias_distances, rows, heads, kv_heads, head_size, q_stride, cache_stride, cache_rows, split_size, splits, scale);
}
extern "C" __global__ void __launch_bounds__(128) decode_attention_split_hs64(float* __restrict__ partial_out, float* __restrict__ partial_max, float* __restrict__ partial_sum, const float* __restrict__ q, const float* __restrict__ k_cache, const float* __restrict__ v_cache, const int* __restrict__ row_keys, const float* __restrict__ distance_bias, int bias_distances, int rows, int heads, int kv_heads, int head_size, int q_stride, int cache_stride, int cache_rows, int split_size, int splits, float scale) {
    decoding_detail::split<64>(partial_out, partial_max, partial_sum, q, k_cache, v_cache, row_keys, distance_bias, bias_distances, rows, heads, kv_heads, head_size, q_stride, cache_stride, cache_rows, split_size, splits, scale);
}
extern "C" __global__ void __launch_bounds__(128) decode_attention_split_hs128(float* __restrict__ partial_out, float* __restrict__ partial_max, float* __restrict__ partial_sum, const float* __restrict__ q, const float* __restrict__ k_cache, const float* __restrict__ v_cache, const int* __restrict__ row_keys, const float* __restrict__ distance_bias, int bias_distances, int rows, int heads, int kv_heads, int head_size, int q_stride, int cache_stride, int cache_rows, int split_size, int splits, float scale) {
    decoding_detail::split<128>(partial_out, partial_max, partial_sum, q, k_cache, v_cache, row_keys, distance_bias, bias_distances, rows, heads, kv_heads, head_size, q_stride, cache_stride, cache_rows, split_size, splits, scale);
}
extern "C" __global__ void __launch_bounds__(128) decode_attention_split_hs256(float* __restrict__ partial_out, float* __restrict__ partial_max, float* __restrict__ partial_sum, const float* __restrict__ q, const float* __restrict__ k_cache, const float* __restrict__ v_cache, const int* __restrict__ row_keys, const float* __restrict__ distance_bias, int bias_distances, int rows, int heads, int kv_heads, int head_size, int q_stride, int cache_stride, int cache_rows, int split_size, int splits, float scale) {
    decoding_detail::split<256>(partial_out, partial_max, partial_sum, q, k_cache, v_cache, row_keys, distance_bias, bias_distances, rows, heads, kv_heads, head_size, q_stride, cache_stride, cache_rows, split_size, splits, scale);
}

// decode_attention_combine — decode attention, step 2: merges a row's splits, out = Σ_s e_s·partial_out_s / Σ_s e_s·sum_s
// with e_s = exp(max_s − max over splits), for the splits that hold keys (ceil(key_length / split_size)).
//   out: [rows, ·] at row stride out_stride, head h at columns h·head_size; the partials and row_keys as
//   decode_attention_split_*. Grid: rows·heads; block: 128 threads striding the channels. No shared memory.
extern "C" __global__ void __launch_bounds__(128) decode_attention_combine(float* __restrict__ out, const float* __restrict__ partial_out, const float* __restrict__ partial_max, const float* __restrict__ partial_sum, const int* __restrict__ row_keys, int rows, int heads, int head_size, int out_stride, int split_size, int splits) {
    const int row_head = static_cast<int>(blockIdx.x);
    const int row = row_head / heads, head = row_head - row * heads;
    if (row >= rows) return;
    const int used = ceil_div(ldg(row_keys + 4 * row + 3), split_size);
    assert(used >= 1 && used <= splits);
    const long long first = static_cast<long long>(row_head) * splits;
    float best = partial_max[first];
    for (int s = 1; s < used; s++) best = fmaxf(best, partial_max[first + s]);
    float total = 0.0f;
    for (int s = 0; s < used; s++) total += partial_sum[first + s] * expf(partial_max[first + s] - best);
    const float inverse = 1.0f / total;
    float* o = out + static_cast<long long>(row) * out_stride + head * head_size;
    for (int c = static_cast<int>(threadIdx.x); c < head_size; c += static_cast<int>(blockDim.x)) {
        float sum = 0.0f;
        for (int s = 0; s < used; s++) sum += partial_out[(first + s) * head_size + c] * expf(partial_max[first + s] - best);
        o[c] = sum * inverse;
    }
}

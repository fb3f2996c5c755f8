// loss.cu — fused softmax cross-entropy over the vocabulary (loss and, in place, dLoss/dlogits) and the
// deterministic loss sum. Mirrors src/SoftPrompt/Cpu/CrossEntropyOps.cs one-to-one.
// Launchers: src/SoftPrompt/Cuda/Kernels/Loss.cs. Tests: tests/SoftPrompt.Tests/Kernels/LossKernelTests.cs.
#include "common.cuh"
#include "kernel_helpers.cuh"

namespace loss_detail {

// "−∞" of the online softmax: finite, so an empty partial (max = kLowest, sum = 0) merges without ∞ − ∞ = NaN,
// and a −∞ logit adds exp(−∞) = 0.
constexpr float kLowest = -3.402823466e+38f;

// Online max/sum of exp: the state (m, s) stands for Σ exp(x_i − m).
struct MaxSum {
    float m, s;
};

__device__ __forceinline__ MaxSum merge(MaxSum a, MaxSum b) {
    const float m = fmaxf(a.m, b.m);
    return {m, a.s * expf(a.m - m) + b.s * expf(b.m - m)};
}

__device__ __forceinline__ void add1(MaxSum& st, float x) {
    if (x > st.m) {
        st.s = st.s * expf(st.m - x) + 1.0f;
        st.m = x;
    } else {
        st.s += expf(x - st.m);
    }
}

__device__ __forceinline__ void add4(MaxSum& st, float4 v) {
    const float hi = fmaxf(fmaxf(v.x, v.y), fmaxf(v.z, v.w));
    if (hi > st.m) {
        st.s *= expf(st.m - hi);
        st.m = hi;
    }
    st.s += (expf(v.x - st.m) + expf(v.y - st.m)) + (expf(v.z - st.m) + expf(v.w - st.m));
}

// Block-wide merge of every thread's state; every thread gets the result (deterministic: a fixed butterfly per
// warp, then warp 0 merges the warps' states in a fixed order). Block size: a multiple of 32, ≤ 1024.
__device__ __forceinline__ MaxSum block_merge(MaxSum st) {
    SHARED(float, part_m, 32);
    SHARED(float, part_s, 32);
#pragma unroll
    for (int o = SP_WARP_SIZE / 2; o > 0; o >>= 1) st = merge(st, MaxSum{warp_shfl_xor(st.m, o), warp_shfl_xor(st.s, o)});
    const unsigned warps = block_size() / SP_WARP_SIZE;
    if (lane_id() == 0) {
        part_m[warp_id()] = st.m;
        part_s[warp_id()] = st.s;
    }
    __syncthreads();
    st = lane_id() < warps ? MaxSum{part_m[lane_id()], part_s[lane_id()]} : MaxSum{kLowest, 0.0f};
#pragma unroll
    for (int o = SP_WARP_SIZE / 2; o > 0; o >>= 1) st = merge(st, MaxSum{warp_shfl_xor(st.m, o), warp_shfl_xor(st.s, o)});
    return st;
}

// The elements of a row split for float4 access: `head` scalars up to the first 16-byte boundary, `body` aligned
// float4s, then `tail` scalars (any V, any row start: a row of V floats starts at r·V).
struct RowSplit {
    int head, body, tail;
};
__device__ __forceinline__ RowSplit split_row(const float* row, int n) {
    const int misaligned = static_cast<int>((reinterpret_cast<unsigned long long>(row) & 15ull) >> 2);  // floats past a boundary
    const int head = min(n, (4 - misaligned) & 3);
    const int body = (n - head) / 4;
    return {head, body, n - head - 4 * body};
}

}  // namespace loss_detail

// cross_entropy — per target row: loss and, when gradient_scale != 0, the logits' gradient (in place, or bf16 into `gradient`).
//   logits: [R, stride] (the first V columns of each row are the logits, any V ≤ stride; the padding is never read);
//   gradient: [R, stride] bf16 out, or null; row_loss: [R] out; targets: [R] int in [0, V).
//   row_loss[r] = logsumexp(logits[r]) − logits[r, targets[r]];
//   if gradient_scale != 0: g[r, v] = (softmax(logits[r])[v] − (v == targets[r])) · gradient_scale for v < V, written
//   over logits[r, v] when gradient is null, else as bf16(g) (round to nearest even, bit for bit to_bf16 of the fp32
//   value the in-place path writes) into gradient[r, v], the logits left as they are: the operand of a bf16 GEMM made
//   without a conversion pass. The in-place path never writes a padding column.
//   Grid: R blocks, one row each; block: 32..1024 threads (the launcher scales it with V). Pass 1 reads the row once
//   with an online (single-pass) max + sum of exp per thread, float4 over the 16-byte-aligned middle of the row; the
//   block merges the partial states deterministically; pass 2 (only with a gradient) reads the row again and writes
//   the gradient (bf16: four values in 8 bytes where the row's middle is 8-byte aligned, as with a stride that is a
//   multiple of 4). Saves nothing: the gradient replaces the logits or goes to the caller's bf16 buffer.
//   The bf16 gradient's padding columns [V, stride) are written with 0: the LM head's bf16 GEMM d(h) = d(logits)·W runs
//   over the padded width (its weight's padding rows are 0 too), so that its K is a whole number of tiles.
extern "C" __global__ void __launch_bounds__(1024) cross_entropy(float* __restrict__ logits, bf16* __restrict__ gradient, float* __restrict__ row_loss, const int* __restrict__ targets, int rows, int vocab, int stride, float gradient_scale) {
    using namespace loss_detail;
    const int r = static_cast<int>(blockIdx.x);
    if (r >= rows) return;  // block-uniform
    float* row = logits + static_cast<long long>(r) * stride;
    const int target = ldg(targets + r);
    assert(target >= 0 && target < vocab);
    const float target_logit = row[target];  // read before pass 2 overwrites it (block_merge's barrier orders them)
    const RowSplit split = split_row(row, vocab);
    const float* body = row + split.head;  // 16-byte aligned
    const int t = static_cast<int>(threadIdx.x), threads = static_cast<int>(blockDim.x);

    MaxSum st{kLowest, 0.0f};
    if (t < split.head) add1(st, row[t]);
    for (int q = t; q < split.body; q += threads) add4(st, load_float4(body + 4 * q));
    if (t < split.tail) add1(st, row[split.head + 4 * split.body + t]);
    st = block_merge(st);

    if (t == 0) row_loss[r] = st.m + logf(st.s) - target_logit;
    if (gradient_scale == 0.0f) return;

    // (softmax − onehot)·scale = exp(x − max)·(scale / Σ) − scale·[v == target], as the CPU op orders it.
    const float factor = gradient_scale / st.s, m = st.m;
    auto grad = [&](float x, int v) {
        const float g = expf(x - m) * factor;
        return v == target ? g - gradient_scale : g;
    };
    const int tail_start = split.head + 4 * split.body;
    if (gradient != nullptr) {
        bf16* out = gradient + static_cast<long long>(r) * stride;
        const bool packed = (reinterpret_cast<unsigned long long>(out + split.head) & 7ull) == 0;  // block-uniform
        if (t < split.head) out[t] = to_bf16(grad(row[t], t));
        for (int q = t; q < split.body; q += threads) {
            const int v = split.head + 4 * q;
            const float4 x = load_float4(body + 4 * q);
            const float g0 = grad(x.x, v), g1 = grad(x.y, v + 1), g2 = grad(x.z, v + 2), g3 = grad(x.w, v + 3);
            if (packed) {
                *reinterpret_cast<uint2*>(out + v) = make_uint2(pack_bf16x2(g0, g1), pack_bf16x2(g2, g3));
            } else {
                out[v] = to_bf16(g0); out[v + 1] = to_bf16(g1); out[v + 2] = to_bf16(g2); out[v + 3] = to_bf16(g3);
            }
        }
        if (t < split.tail) out[tail_start + t] = to_bf16(grad(row[tail_start + t], tail_start + t));
        for (int v = vocab + t; v < stride; v += threads) out[v] = to_bf16(0.0f);
        return;
    }
    if (t < split.head) row[t] = grad(row[t], t);
    for (int q = t; q < split.body; q += threads) {
        float* p = row + split.head + 4 * q;
        const int v = split.head + 4 * q;
        const float4 x = load_float4(p);
        store_float4(p, make_float4(grad(x.x, v), grad(x.y, v + 1), grad(x.z, v + 2), grad(x.w, v + 3)));
    }
    if (t < split.tail) {
        const int v = tail_start + t;
        row[v] = grad(row[v], v);
    }
}

// sum_loss — result[0] = scale · Σ row_loss[i], deterministic.
//   result: [1] out; row_loss: [n].
//   Grid: 1 block; block: 1024 threads. Thread t adds i = t, t + 1024, … in order, then a fixed block tree
//   (block_reduce_sum): the same bits on every run, whatever the scheduling.
extern "C" __global__ void __launch_bounds__(1024) sum_loss(float* __restrict__ result, const float* __restrict__ row_loss, int n, float scale) {
    float sum = 0.0f;
    for (int i = static_cast<int>(threadIdx.x); i < n; i += static_cast<int>(blockDim.x)) sum += row_loss[i];
    sum = block_reduce_sum(sum);
    if (threadIdx.x == 0) result[0] = scale * sum;
}

namespace loss_detail {

// Whether (v, i) beats (best, best_index) under TensorPrimitives.IndexOfMax's rule: the larger value, NaN above
// everything, and the lower index among equals (so the first maximum wins whatever the thread that saw it).
__device__ __forceinline__ bool beats(float v, int i, float best, int best_index) {
    const bool v_nan = v != v, best_nan = best != best;
    if (v_nan != best_nan) return v_nan;
    if (!v_nan && v != best) return v > best;
    return i < best_index;
}

}  // namespace loss_detail

// row_argmax — indices[r] = the column of row r's largest logit (the first one among equals; the first NaN if any).
//   indices: [rows] int out; logits: [rows, stride], the first vocab columns of each row (read before cross_entropy
//   overwrites them with gradients; the padding past vocab is never read).
//   Grid: rows blocks; block: 256 threads striding the row, then a warp-shuffle and a shared-memory reduction of
//   (value, index) pairs. Greedy-match counting on the device: the host reads one int per target instead of V floats.
extern "C" __global__ void __launch_bounds__(256) row_argmax(int* __restrict__ indices, const float* __restrict__ logits, int rows, int vocab, int stride) {
    using namespace loss_detail;
    const int r = static_cast<int>(blockIdx.x);
    if (r >= rows) return;
    const float* row = logits + static_cast<long long>(r) * stride;
    const int t = static_cast<int>(threadIdx.x);
    float best = -INFINITY;
    int best_index = 0x7fffffff;
    for (int c = t; c < vocab; c += static_cast<int>(blockDim.x)) {
        const float v = row[c];
        if (beats(v, c, best, best_index)) { best = v; best_index = c; }
    }
    for (int offset = SP_WARP_SIZE / 2; offset > 0; offset /= 2) {
        const float v = warp_shfl_down(best, static_cast<unsigned>(offset));
        const int i = warp_shfl_down(best_index, static_cast<unsigned>(offset));
        if (beats(v, i, best, best_index)) { best = v; best_index = i; }
    }
    SHARED(float, warp_best, 8);
    SHARED(int, warp_index, 8);
    const int lane = static_cast<int>(lane_id()), warp = static_cast<int>(warp_id());
    if (lane == 0) { warp_best[warp] = best; warp_index[warp] = best_index; }
    __syncthreads();
    if (t == 0) {
        const int warps = static_cast<int>(blockDim.x) / SP_WARP_SIZE;
        for (int w = 1; w < warps; ++w)
            if (beats(warp_best[w], warp_index[w], best, best_index)) { best = warp_best[w]; best_index = warp_index[w]; }
        indices[r] = best_index;
    }
}

// head_gather_bf16 — destination[i, :] = bf16(scale · source[row_index[i], :]) (round to nearest even; row i itself when
//   row_index is null): the bf16 LM head's operand in one pass, the logit scale applied before rounding as PyTorch scales
//   T5 v1.0's decoder output before its bf16 lm_head matmul (scale 1 elsewhere: then bit for bit convert_to_bf16).
//   destination: [count, C] bf16 out; source: [source_rows, C]; row_index: [count] in [0, source_rows), or null.
//   Grid: ceil(count / 8) blocks; block: 256 threads = 8 warps, one warp per destination row, the lanes striding the channels.
extern "C" __global__ void __launch_bounds__(256) head_gather_bf16(bf16* __restrict__ destination, const float* __restrict__ source, const int* __restrict__ row_index, int count, int channels, int source_rows, float scale) {
    const int i = grid_warp();
    if (i >= count) return;
    const int r = row_index != nullptr ? ldg(row_index + i) : i;
    assert(r >= 0 && r < source_rows);
    const float* src = source + static_cast<long long>(r) * channels;
    bf16* dst = destination + static_cast<long long>(i) * channels;
    for (int c = static_cast<int>(lane_id()); c < channels; c += SP_WARP_SIZE) dst[c] = to_bf16(scale * src[c]);
}

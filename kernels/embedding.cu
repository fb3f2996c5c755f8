// embedding.cu — input embeddings with the soft prompts spliced in front, the prompt-gradient reduction, and
// row gathers/scatters. Mirrors src/SoftPrompt/Cpu/EmbeddingOps.cs one-to-one.
// Launchers: src/SoftPrompt/Cuda/Kernels/Embedding.cs. Tests: tests/SoftPrompt.Tests/Kernels/EmbeddingKernelTests.cs.
#include "common.cuh"
#include "kernel_helpers.cuh"

namespace embedding_detail {

__device__ __forceinline__ float4 add4(float4 a, float4 b) { return make_float4(a.x + b.x, a.y + b.y, a.z + b.z, a.w + b.w); }

// One warp copies a row of `channels` floats or bf16 (lanes stride the row; 16 bytes per lane and step when `vec`).
template <typename T>
__device__ __forceinline__ void copy_row(T* __restrict__ dst, const T* __restrict__ src, int channels, bool vec) {
    constexpr int kVec = 16 / static_cast<int>(sizeof(T));
    const int lane = static_cast<int>(lane_id());
    if (vec) {
        for (int c = kVec * lane; c < channels; c += kVec * SP_WARP_SIZE)
            *reinterpret_cast<uint4*>(dst + c) = *reinterpret_cast<const uint4*>(src + c);
    } else {
        for (int c = lane; c < channels; c += SP_WARP_SIZE) dst[c] = src[c];
    }
}

// gather_rows / scatter_rows: one warp copies compact row i to (SCATTER) or from indexed row row_index[i]
// (indexed_rows rows, for the emulator's range assert).
template <bool SCATTER, typename T>
__device__ __forceinline__ void copy_indexed_row(T* __restrict__ destination, const T* __restrict__ source, const int* __restrict__ row_index,
                                                 int count, int channels, int indexed_rows) {
    const int i = grid_warp();
    if (i >= count) return;
    const int r = ldg(row_index + i);
    assert(r >= 0 && r < indexed_rows);
    const long long to = SCATTER ? r : i, from = SCATTER ? i : r;
    const bool vec = channels % (16 / static_cast<int>(sizeof(T))) == 0 && aligned16(destination) && aligned16(source);
    copy_row(destination + to * channels, source + from * channels, channels, vec);
}

// gather_sum_rows: a warp owns kSumSlice channels of its row (4 per lane) and loads kSumBatch source rows at a time.
constexpr int kSumSlice = 4 * SP_WARP_SIZE, kSumBatch = 8;

// A lane's 4 channels of a slice: consecutive (one float4) on the vector path, else 32 apart (coalesced scalars);
// channels past C are neither loaded nor stored (their values stay whatever the caller put there).
struct SliceColumns {
    int c0, step, channels;
    bool vec;
    __device__ __forceinline__ SliceColumns(int slice, int lane, int channels_, bool vec_)
        : c0(slice * kSumSlice + (vec_ ? 4 * lane : lane)), step(vec_ ? 1 : SP_WARP_SIZE), channels(channels_), vec(vec_) {}
    template <typename T>
    __device__ __forceinline__ void load(float (&v)[4], const T* __restrict__ row) const {
        if (vec) {
            if (c0 < channels) load_vec<4>(v, row + c0);
        } else {
#pragma unroll
            for (int j = 0; j < 4; ++j)
                if (c0 + j * step < channels) v[j] = load_value(row + c0 + j * step);
        }
    }
    // float, or bf16 (each value rounded to nearest even: store_vec / store_value).
    template <typename OUT>
    __device__ __forceinline__ void store(OUT* __restrict__ row, const float (&v)[4]) const {
        if (vec) {
            if (c0 < channels) store_vec<4>(row + c0, v);
        } else {
#pragma unroll
            for (int j = 0; j < 4; ++j)
                if (c0 + j * step < channels) store_value(row + c0 + j * step, v[j]);
        }
    }
};

// gather_sum_rows for an fp32 or bf16 destination: the sum is fp32 in entry order either way, stored once.
template <typename OUT>
__device__ __forceinline__ void gather_sum_row_slice(OUT* __restrict__ destination, const float* __restrict__ source, const int* __restrict__ starts,
                                                     const int* __restrict__ index, int rows, int channels, int source_rows, int accumulate) {
    const int slices = ceil_div(channels, kSumSlice), w = grid_warp(), r = w / slices;
    if (r >= rows) return;  // whole warps: the shuffles below see every lane
    const int lane = static_cast<int>(lane_id());
    const SliceColumns cols(w - r * slices, lane, channels, (channels & 3) == 0 && aligned16(destination) && aligned16(source));
    const int first = ldg(starts + r), last = ldg(starts + r + 1);
    OUT* out = destination + static_cast<long long>(r) * channels;
    float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    if (accumulate) cols.load(acc, out);  // fp32 only: the bf16 kernel passes 0 (accumulating in bf16 would round twice)
    for (int base = first; base < last; base += SP_WARP_SIZE) {
        const int n = min(SP_WARP_SIZE, last - base);  // the same on every lane
        const int mine = lane < n ? ldg(index + base + lane) : 0;
        assert(mine >= 0 && mine < source_rows);
        for (int i = 0; i < n; i += kSumBatch) {
            float v[kSumBatch][4] = {};
#pragma unroll
            for (int u = 0; u < kSumBatch; ++u) {
                const int s = warp_shfl(mine, i + u);  // i + u < 32: i is a multiple of kSumBatch below n ≤ 32
                if (i + u < n) cols.load(v[u], source + static_cast<long long>(s) * channels);
            }
#pragma unroll
            for (int u = 0; u < kSumBatch; ++u)  // entry order; a missing entry is skipped, not "+ 0" (−0 stays −0)
                if (i + u < n)
#pragma unroll
                    for (int j = 0; j < 4; ++j) acc[j] += v[u][j];
        }
    }
    cols.store(out, acc);
}

}  // namespace embedding_detail

// embedding_forward — token embeddings with soft prompts spliced in front, plus position embeddings.
//   x: [B, T, C] out; tokens: [B, token_length] int (row stride token_length); prompts: [ΣP_k, C], prompt k at rows
//   [prompt_offsets[k], prompt_offsets[k + 1]); prompt_index: [B] int in [0, K); prompt_offsets: [K + 1] int, or null
//   for no prompts (every P_b = 0); wte: [V, C]; wpe: [≥T, C]. prompt_count (K) and vocab (V) are used only by the
//   emulator's range asserts. With k = prompt_index[b], o = prompt_offsets[k], P_b = prompt_offsets[k + 1] − o:
//   x[b, t, :] = (t < P_b ? prompts[o + t, :] : t − P_b < token_length ? wte[tokens[b, t − P_b], :] : 0) + wpe[t, :].
//   Rows may use different prompts of different lengths; a row with a shorter prompt ends with zero-token positions.
//   Grid: ceil(B·T / 8) blocks; block: 256 threads = 8 warps, one warp per (b, t) row; the lanes stride the channels,
//   with float4 accesses when C % 4 == 0 and x, prompts, wte, wpe are 16-byte aligned (scalar otherwise).
//   Bit-exact with the CPU op (one add per element). Saves nothing: the backward needs only prompt_index.
extern "C" __global__ void __launch_bounds__(256) embedding_forward(float* __restrict__ x, const int* __restrict__ tokens, const float* __restrict__ prompts, const int* __restrict__ prompt_index, const int* __restrict__ prompt_offsets, const float* __restrict__ wte, const float* __restrict__ wpe, int batch, int sequence, int token_length, int channels, int prompt_count, int vocab) {
    using namespace embedding_detail;
    const int row = grid_warp();
    if (row >= batch * sequence) return;
    const int b = row / sequence, t = row - b * sequence;
    int offset = 0, prompt_length = 0;
    if (prompt_offsets != nullptr) {
        const int k = ldg(prompt_index + b);
        assert(k >= 0 && k < prompt_count);
        offset = ldg(prompt_offsets + k);
        prompt_length = ldg(prompt_offsets + k + 1) - offset;
    }
    const float* src = nullptr;
    if (t < prompt_length) {
        src = prompts + (static_cast<long long>(offset) + t) * channels;
    } else if (t - prompt_length < token_length) {
        const int token = ldg(tokens + static_cast<long long>(b) * token_length + (t - prompt_length));
        assert(token >= 0 && token < vocab);
        src = wte + static_cast<long long>(token) * channels;
    }
    const float* pos = wpe + static_cast<long long>(t) * channels;
    float* out = x + static_cast<long long>(row) * channels;
    if (src == nullptr) {  // past a shorter prompt's token row: the position embedding alone
        copy_row(out, pos, channels, (channels & 3) == 0 && aligned16(x) && aligned16(wpe));
        return;
    }
    const bool vec = (channels & 3) == 0 && aligned16(x) && aligned16(prompts) && aligned16(wte) && aligned16(wpe);
    const int lane = static_cast<int>(lane_id());
    if (vec) {
        for (int c = 4 * lane; c < channels; c += 4 * SP_WARP_SIZE) store_float4(out + c, add4(load_float4(src + c), load_float4(pos + c)));
    } else {
        for (int c = lane; c < channels; c += SP_WARP_SIZE) out[c] = src[c] + pos[c];
    }
}

// prompt_gradient — the soft-prompt gradient: a deterministic reduction over the batch rows, no atomics.
//   d_prompts: [ΣP_k, C] (overwritten, or added to when accumulate != 0); dx: [B, T, C] (the embedding-output
//   gradient; only positions t < P_b are read); prompt_index: [B] int in [0, K); prompt_offsets: [K + 1] int as in
//   embedding_forward. d_prompts[o_k + p, c] (= | +=) Σ over b with prompt_index[b] == k, in increasing b, of dx[b, p, c].
//   Grid: (ΣP_k, ceil(C / (4·blockDim.x))); block: 32..256 threads (launcher: enough for the row's 4-channel chunks).
//   Block (r, j) owns dPrompts row r (prompt k with o_k ≤ r < o_{k+1}, found by a scan of the offsets: K is small);
//   each thread owns 4 consecutive channels of it (float4 when C % 4 == 0 and d_prompts, dx are 16-byte aligned) and
//   walks the batch in order, so the sum is the CPU op's, bit for bit, whatever the grid. Rows of prompts that no batch
//   row uses get 0 (or keep their value when accumulating).
extern "C" __global__ void __launch_bounds__(256) prompt_gradient(float* __restrict__ d_prompts, const float* __restrict__ dx, const int* __restrict__ prompt_index, const int* __restrict__ prompt_offsets, int batch, int sequence, int prompt_count, int channels, int accumulate) {
    using namespace embedding_detail;
    const int r = static_cast<int>(blockIdx.x);
    const int c = 4 * static_cast<int>(blockIdx.y * blockDim.x + threadIdx.x);
    if (c >= channels) return;
    int k = 0;  // the grid has exactly ΣP_k rows, so the scan ends inside the offsets
    while (ldg(prompt_offsets + k + 1) <= r) ++k;
    assert(k < prompt_count);
    const int p = r - ldg(prompt_offsets + k);
    float* out = d_prompts + static_cast<long long>(r) * channels + c;
    const float* in = dx + static_cast<long long>(p) * channels + c;
    const long long stride = static_cast<long long>(sequence) * channels;  // one batch row of dx
    if ((channels & 3) == 0 && aligned16(d_prompts) && aligned16(dx)) {
        float4 acc = accumulate ? load_float4(out) : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
        int b = 0;
        // Four rows at a time: their loads are issued together, the adds still happen in row order (bit-exact).
        for (; b + 4 <= batch; b += 4) {
            const bool u0 = ldg(prompt_index + b) == k, u1 = ldg(prompt_index + b + 1) == k;
            const bool u2 = ldg(prompt_index + b + 2) == k, u3 = ldg(prompt_index + b + 3) == k;
            const float4 zero = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
            const float4 v0 = u0 ? load_float4(in + b * stride) : zero;
            const float4 v1 = u1 ? load_float4(in + (b + 1) * stride) : zero;
            const float4 v2 = u2 ? load_float4(in + (b + 2) * stride) : zero;
            const float4 v3 = u3 ? load_float4(in + (b + 3) * stride) : zero;
            if (u0) acc = add4(acc, v0);  // skipped, not "+ 0": −0 + 0 would turn a −0 sum into +0
            if (u1) acc = add4(acc, v1);
            if (u2) acc = add4(acc, v2);
            if (u3) acc = add4(acc, v3);
        }
        for (; b < batch; ++b)
            if (ldg(prompt_index + b) == k) acc = add4(acc, load_float4(in + b * stride));
        store_float4(out, acc);
    } else {
        const int n = min(4, channels - c);
        float acc[4];
        for (int j = 0; j < 4; ++j) acc[j] = j < n && accumulate ? out[j] : 0.0f;
        for (int b = 0; b < batch; ++b) {
            if (ldg(prompt_index + b) != k) continue;
            for (int j = 0; j < n; ++j) acc[j] += in[b * stride + j];
        }
        for (int j = 0; j < n; ++j) out[j] = acc[j];
    }
}

// gather_rows — destination[i, :] = source[row_index[i], :].
//   destination: [count, C]; source: [rows, C] (source_rows rows, for the emulator's range assert); row_index: [count].
//   Grid: ceil(count / 8) blocks; block: 256 threads = 8 warps, one warp per destination row (float4 when C % 4 == 0
//   and both buffers are 16-byte aligned). Bit-exact copy.
extern "C" __global__ void __launch_bounds__(256) gather_rows(float* __restrict__ destination, const float* __restrict__ source, const int* __restrict__ row_index, int count, int channels, int source_rows) {
    embedding_detail::copy_indexed_row<false>(destination, source, row_index, count, channels, source_rows);
}

// gather_rows_bf16 — gather_rows for bf16 rows (16-byte copies when C % 8 == 0 and both buffers are 16-byte aligned):
//   how bf16 activations (q|k|v, the attention output) move between the shared-row and full layouts. Bit-exact copy.
extern "C" __global__ void __launch_bounds__(256) gather_rows_bf16(bf16* __restrict__ destination, const bf16* __restrict__ source, const int* __restrict__ row_index, int count, int channels, int source_rows) {
    embedding_detail::copy_indexed_row<false>(destination, source, row_index, count, channels, source_rows);
}

// scatter_rows — destination[row_index[i], :] = source[i, :]; the indices must be distinct (rows are written once).
//   destination: [rows, C] (destination_rows rows, for the emulator's range assert); source: [count, C]; row_index: [count].
//   Grid: ceil(count / 8) blocks; block: 256 threads = 8 warps, one warp per source row (float4 when C % 4 == 0 and
//   both buffers are 16-byte aligned). Bit-exact copy; destination rows not named by row_index are untouched.
extern "C" __global__ void __launch_bounds__(256) scatter_rows(float* __restrict__ destination, const float* __restrict__ source, const int* __restrict__ row_index, int count, int channels, int destination_rows) {
    embedding_detail::copy_indexed_row<true>(destination, source, row_index, count, channels, destination_rows);
}

// gather_sum_rows — destination[r, :] (= | +=) Σ over i in [starts[r], starts[r + 1]), in increasing i, of
//   source[index[i], :]; a row with no entries gets 0 (or keeps its value when accumulating). The deterministic
//   reduction behind shared prompt positions: a prompt position's gradient is the sum over the batch rows that read it.
//   destination: [rows, C]; source: [source_rows, C] (source_rows for the emulator's range assert); starts: [rows + 1];
//   index: [starts[rows]].
//   Grid: ceil(rows · ceil(C / 128) / 8) blocks; block: 256 threads = 8 warps, one warp per (row, 128-channel slice):
//   warp w sums slice w % slices of row w / slices, each lane 4 of its channels (a float4 when C % 4 == 0 and both
//   buffers are 16-byte aligned, else 4 channels 32 apart). A row with many entries (a prompt position shared by the
//   whole batch) is thus spread over C / 128 warps instead of one. The lanes load 32 of the row's indices at once and
//   pass them round by shuffles; the source rows are loaded 8 at a time (independent loads in flight) and added in
//   entry order, so each element's sum is bit-identical to a CPU loop over the entries.
extern "C" __global__ void __launch_bounds__(256) gather_sum_rows(float* __restrict__ destination, const float* __restrict__ source, const int* __restrict__ starts, const int* __restrict__ index, int rows, int channels, int source_rows, int accumulate) {
    embedding_detail::gather_sum_row_slice(destination, source, starts, index, rows, channels, source_rows, accumulate);
}

// gather_sum_rows_bf16 — gather_sum_rows with destination in bf16 ([rows, C]) and no accumulation: each element is the
//   same fp32 sum in entry order, rounded once to nearest even, so the result is bit for bit to_bf16 of gather_sum_rows'
//   (the operand of a bf16 GEMM, made without a convert_to_bf16 pass). The vector path needs destination 8-byte aligned
//   (checked as 16). Grid and block as gather_sum_rows.
extern "C" __global__ void __launch_bounds__(256) gather_sum_rows_bf16(bf16* __restrict__ destination, const float* __restrict__ source, const int* __restrict__ starts, const int* __restrict__ index, int rows, int channels, int source_rows) {
    embedding_detail::gather_sum_row_slice(destination, source, starts, index, rows, channels, source_rows, 0);
}

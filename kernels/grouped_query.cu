// grouped_query.cu — grouped-query attention's key/value head sharing: repeat_kv (each kv head copied to the query
// heads of its group, Hugging Face's repeat_kv) and its backward (each kv head's gradient summed over its group).
// Mirrors src/SoftPrompt/Cpu/GroupedQueryOps.cs one-to-one. Launchers: src/SoftPrompt/Cuda/Kernels/GroupedQuery.cs.
// Tests: tests/SoftPrompt.Tests/Kernels/LlamaKernelTests.cs.
//
// Shapes: wide [rows, heads·head_size], narrow [rows, kv_heads·head_size]; group = heads / kv_heads, and query head h
// belongs to kv head h / group. Both kernels are grid-stride loops (block 256) with one thread per OUTPUT element, so
// neither needs atomics: sum_kv_groups adds a group's heads in increasing h in one thread, deterministically and with the
// CPU op's bits. A thread handles a float4 when head_size % 4 == 0 and both buffers are 16-byte aligned (a float4 then
// never straddles two heads), single floats otherwise.
#include "common.cuh"
#include "kernel_helpers.cuh"

namespace grouped_query_detail {

// Index math in units of VEC floats (VEC = 4 or 1): `width` is head_size / VEC.
// Element i of wide → its row, query head and offset within the head; and the narrow element it is a copy of.
__device__ __forceinline__ int narrow_index_of_wide(int i, int heads, int kv_heads, int width) {
    const int column = i % (heads * width), row = i / (heads * width);
    const int head = column / width, j = column % width;
    return row * kv_heads * width + head / (heads / kv_heads) * width + j;
}

// Element i of narrow → the wide element of the first query head of its group (the others follow `width` apart).
__device__ __forceinline__ int first_wide_index_of_narrow(int i, int heads, int kv_heads, int width) {
    const int column = i % (kv_heads * width), row = i / (kv_heads * width);
    const int kv_head = column / width, j = column % width;
    return row * heads * width + kv_head * (heads / kv_heads) * width + j;
}

}  // namespace grouped_query_detail

// repeat_kv_heads — wide[r, h, :] = narrow[r, h / (heads/kv_heads), :] (a copy: exact).
//   wide: [rows, heads·head_size]; narrow: [rows, kv_heads·head_size]; heads a multiple of kv_heads; the two must not
//   overlap. Grid: any (grid-stride over wide's elements); block: 256; float4 as above. Saves nothing.
extern "C" __global__ void __launch_bounds__(256) repeat_kv_heads(float* wide, const float* narrow, int rows, int heads, int kv_heads, int head_size) {
    using namespace grouped_query_detail;
    const int stride = grid_stride(), first = grid_first();
    if (head_size % 4 == 0 && aligned16(wide) && aligned16(narrow)) {
        const int width = head_size / 4, quads = rows * heads * width;
        for (int q = first; q < quads; q += stride)
            store_float4(wide + 4 * q, load_float4(narrow + 4 * narrow_index_of_wide(q, heads, kv_heads, width)));
        return;
    }
    const int n = rows * heads * head_size;
    for (int i = first; i < n; i += stride) wide[i] = narrow[narrow_index_of_wide(i, heads, kv_heads, head_size)];
}

// repeat_kv_heads_bf16 — repeat_kv_heads on bf16 k/v (bf16 precision at head sizes the tensor-core attention, which
//   reads the groups in place, does not cover). Shapes and grid as repeat_kv_heads; one bf16 per step.
extern "C" __global__ void __launch_bounds__(256) repeat_kv_heads_bf16(bf16* wide, const bf16* narrow, int rows, int heads, int kv_heads, int head_size) {
    using namespace grouped_query_detail;
    const int n = rows * heads * head_size;
    for (int i = grid_first(); i < n; i += grid_stride()) wide[i] = narrow[narrow_index_of_wide(i, heads, kv_heads, head_size)];
}

// sum_kv_groups — narrow[r, g, :] = ((0 + wide[r, g·G, :]) + wide[r, g·G + 1, :]) + … + wide[r, g·G + G − 1, :],
//   G = heads / kv_heads: repeat_kv_heads' backward. Overwrites narrow; the order of the adds is the CPU op's (starting
//   from +0, as its cleared buffer does), so the result is bit-identical to it.
//   narrow: [rows, kv_heads·head_size]; wide: [rows, heads·head_size]; must not overlap. Grid: any (grid-stride over
//   narrow's elements); block: 256; float4 as above.
extern "C" __global__ void __launch_bounds__(256) sum_kv_groups(float* narrow, const float* wide, int rows, int heads, int kv_heads, int head_size) {
    using namespace grouped_query_detail;
    const int stride = grid_stride(), first = grid_first(), group = heads / kv_heads;
    if (head_size % 4 == 0 && aligned16(narrow) && aligned16(wide)) {
        const int width = head_size / 4, quads = rows * kv_heads * width;
        for (int q = first; q < quads; q += stride) {
            const float* w = wide + 4 * first_wide_index_of_narrow(q, heads, kv_heads, width);
            float4 sum = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
            for (int k = 0; k < group; ++k, w += head_size) {
                const float4 v = load_float4(w);
                sum.x += v.x; sum.y += v.y; sum.z += v.z; sum.w += v.w;
            }
            store_float4(narrow + 4 * q, sum);
        }
        return;
    }
    const int n = rows * kv_heads * head_size;
    for (int i = first; i < n; i += stride) {
        const float* w = wide + first_wide_index_of_narrow(i, heads, kv_heads, head_size);
        float sum = 0.0f;
        for (int k = 0; k < group; ++k, w += head_size) sum += *w;
        narrow[i] = sum;
    }
}

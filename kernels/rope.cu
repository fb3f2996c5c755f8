// rope.cu — rotary position embedding in Hugging Face Llama's rotate-half layout, in place, with an optional scale folded
// in (the engine passes attention's 1/√hd with the query). Mirrors src/SoftPrompt/Cpu/RopeOps.cs one-to-one.
// Launchers: src/SoftPrompt/Cuda/Kernels/Rope.cs. Tests: tests/SoftPrompt.Tests/Kernels/LlamaKernelTests.cs.
//
// For a head vector x [hd] at position t, h = hd/2, c_j = cos[t, j], s_j = sin[t, j]:
//   forward  y_j = (x_j·c_j − x_{j+h}·s_j)·scale,  y_{j+h} = (x_{j+h}·c_j + x_j·s_j)·scale   (scale · R(t)·x)
//   backward the same with s_j → −s_j                                                         (scale · R(t)ᵀ·x)
// Mapping: a grid-stride loop with one thread per rotated pair (row, head, j < h); consecutive threads take consecutive
// j, so the reads of x_j, x_{j+h} and of the table rows are coalesced. The thread owning a pair reads both elements
// before writing them, so the rotation in place is race-free. Every product and sum is rounded on its own
// (__fmul_rn / __fadd_rn stop nvcc from contracting them into FMAs), so the GPU gives the CPU op's bits.
// bf16 precision (rope_gather_bf16): the same fp32 math on fp32 q/k (the projections' fp32 sums), rounded to nearest even
// once at the end into attention's bf16 operand, gathered into the full layout on the way. One rounding fewer than
// PyTorch's bf16 autocast (which also rounds the projection's output before its fp32 RoPE): with both, the sharp
// head-size-64 Llama of Bf16EngineTests doubled its loss error and failed the accuracy bar.
#include "common.cuh"
#include "kernel_helpers.cuh"

namespace rope_detail {

// y [batch·sequence, heads·head_size] = every pair of x's rows rotated by its position's angle; sign = +1 forward, −1
// backward (negating s is exact, so the backward rounds exactly as the CPU op's `sj = -s[j]`). Row r of y reads row
// row_index[r] of x (< source_rows), or row r itself when row_index is null (then y may be x: in place).
template <typename TOut>
__device__ __forceinline__ void rotate_pairs(TOut* y, const float* x, const int* row_index, int source_rows, const float* cos_table,
                                             const float* sin_table, int batch, int sequence, int heads, int head_size, float scale, float sign) {
    const int half = head_size / 2;
    const int pairs = batch * sequence * heads * half;  // ≤ the element count, which the launcher keeps in int range
    for (int p = grid_first(); p < pairs; p += grid_stride()) {
        const int j = p % half;
        const int row_head = p / half;       // (b·sequence + t)·heads + head
        const int t = (row_head / heads) % sequence;
        const int row = row_head / heads, source_row = row_index ? row_index[row] : row;
        assert(source_row >= 0 && source_row < source_rows);
        const float* u = x + (source_row * heads + row_head % heads) * head_size + j;
        const float c = cos_table[t * half + j], s = sign * sin_table[t * half + j];
        const float a = u[0], b = u[half];
        TOut* v = y + row_head * head_size + j;
        store_value(v, __fmul_rn(__fadd_rn(__fmul_rn(a, c), -__fmul_rn(b, s)), scale));
        store_value(v + half, __fmul_rn(__fadd_rn(__fmul_rn(b, c), __fmul_rn(a, s)), scale));
    }
}

}  // namespace rope_detail

// rope_forward — x ← scale · R(t)·x, in place (RopeOps.Forward).
//   x: [batch, sequence, heads·head_size], row (b, t) at position t; cos_table, sin_table: [≥ sequence, head_size/2]
//   (cos and sin of t·ω_j); head_size even.
//   Grid: any (grid-stride over batch·sequence·heads·head_size/2 pairs); block: 256; no shared memory. Saves nothing:
//   the backward needs only the tables.
extern "C" __global__ void __launch_bounds__(256) rope_forward(float* x, const float* cos_table, const float* sin_table, int batch, int sequence, int heads, int head_size, float scale) {
    rope_detail::rotate_pairs(x, x, nullptr, batch * sequence, cos_table, sin_table, batch, sequence, heads, head_size, scale, 1.0f);
}

// rope_gather_bf16 — y[r] ← bf16(scale · R(t)·x[row_index[r]]): rope_forward's fp32 math on the gathered fp32 row, each
//   value rounded to nearest even once (attention's bf16 q/k in the full layout, from the shared-row projections).
//   y: [batch, sequence, heads·head_size] bf16, row r = b·sequence + t; x: [source_rows, heads·head_size] fp32;
//   row_index: [batch·sequence], each < source_rows; tables as rope_forward. Grid and block as rope_forward; y must not
//   overlap x. The backward stays rope_backward on fp32 gradients (attention writes d(q), d(k) in fp32).
extern "C" __global__ void __launch_bounds__(256) rope_gather_bf16(bf16* y, const float* x, const int* row_index, int source_rows, const float* cos_table, const float* sin_table, int batch, int sequence, int heads, int head_size, float scale) {
    rope_detail::rotate_pairs(y, x, row_index, source_rows, cos_table, sin_table, batch, sequence, heads, head_size, scale, 1.0f);
}

// rope_backward — dx ← scale · R(t)ᵀ·dy, in place over x (RopeOps.Backward): the gradient through rope_forward.
//   Shapes, grid and block as rope_forward.
extern "C" __global__ void __launch_bounds__(256) rope_backward(float* x, const float* cos_table, const float* sin_table, int batch, int sequence, int heads, int head_size, float scale) {
    rope_detail::rotate_pairs(x, x, nullptr, batch * sequence, cos_table, sin_table, batch, sequence, heads, head_size, scale, -1.0f);
}

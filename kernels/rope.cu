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
// bf16 storage (rope_forward_bf16: q and k in bf16 precision): the same fp32 math on the widened values, rounded to
// nearest even once at the end — what PyTorch's bf16 autocast does to a bf16 q/k (its RoPE runs in fp32 against the fp32
// cos/sin, and the next matmul rounds the result to bf16 once).
#include "common.cuh"
#include "kernel_helpers.cuh"

namespace rope_detail {

// Rotates every pair of x [batch·sequence, heads·head_size] by its position's angle; sign = +1 forward, −1 backward
// (negating s is exact, so the backward rounds exactly as the CPU op's `sj = -s[j]`).
template <typename T>
__device__ __forceinline__ void rotate_pairs(T* x, const float* cos_table, const float* sin_table, int batch, int sequence, int heads,
                                             int head_size, float scale, float sign) {
    const int half = head_size / 2;
    const int pairs = batch * sequence * heads * half;  // ≤ the element count, which the launcher keeps in int range
    for (int p = grid_first(); p < pairs; p += grid_stride()) {
        const int j = p % half;
        const int row_head = p / half;       // (b·sequence + t)·heads + head
        const int t = (row_head / heads) % sequence;
        T* v = x + row_head * head_size + j;
        const float c = cos_table[t * half + j], s = sign * sin_table[t * half + j];
        const float a = load_value(v), b = load_value(v + half);
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
    rope_detail::rotate_pairs(x, cos_table, sin_table, batch, sequence, heads, head_size, scale, 1.0f);
}

// rope_forward_bf16 — rope_forward on bf16 x: fp32 math from the fp32 tables, each value rounded to nearest even once.
//   x: [batch, sequence, heads·head_size] bf16; the rest, grid and block as rope_forward. The backward stays
//   rope_backward on fp32 gradients (attention writes d(q), d(k) in fp32).
extern "C" __global__ void __launch_bounds__(256) rope_forward_bf16(bf16* x, const float* cos_table, const float* sin_table, int batch, int sequence, int heads, int head_size, float scale) {
    rope_detail::rotate_pairs(x, cos_table, sin_table, batch, sequence, heads, head_size, scale, 1.0f);
}

// rope_backward — dx ← scale · R(t)ᵀ·dy, in place over x (RopeOps.Backward): the gradient through rope_forward.
//   Shapes, grid and block as rope_forward.
extern "C" __global__ void __launch_bounds__(256) rope_backward(float* x, const float* cos_table, const float* sin_table, int batch, int sequence, int heads, int head_size, float scale) {
    rope_detail::rotate_pairs(x, cos_table, sin_table, batch, sequence, heads, head_size, scale, -1.0f);
}

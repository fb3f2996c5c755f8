// swiglu.cu — Llama's SwiGLU feed-forward activation, elementwise: y = silu(gate) ⊙ up, silu(g) = g/(1 + e^−g) = g·σ(g)
// (gate = gate_proj·x, up = up_proj·x). Mirrors src/SoftPrompt/Cpu/SwiGluOps.cs one-to-one.
// Launchers: src/SoftPrompt/Cuda/Kernels/SwiGlu.cs. Tests: tests/SoftPrompt.Tests/Kernels/LlamaKernelTests.cs.
//
// Both kernels are grid-stride loops (block 256, the launcher caps the grid) over n elements; a thread handles float4s
// when every buffer is 16-byte aligned (then the n % 4 tail element-wise), single floats otherwise. Each element is read
// by the thread that writes it, before it writes it, so outputs may alias inputs.
//
// The arithmetic is the CPU op's, operation by operation: expf (not __expf), the same divisions, the products in the
// same order, and __fmul_rn / __fadd_rn where nvcc would otherwise contract a product and a sum into one FMA. What is
// left between the two is expf's last bits (CUDA's expf is within 2 ulp; the emulator uses libm's).
#include "common.cuh"
#include "kernel_helpers.cuh"

namespace swiglu_detail {

// 1 + exp(−g), with exp rounded first: a plain `1.0f + expf(-g)` lets nvcc fuse the add into expf's last multiply.
__device__ __forceinline__ float one_plus_exp_minus(float g) { return __fadd_rn(1.0f, expf(-g)); }

// SwiGluOps.Forward: gate / (1 + exp(−gate)) · up.
__device__ __forceinline__ float swiglu(float g, float u) { return g / one_plus_exp_minus(g) * u; }

// SwiGluOps.Backward for one element: σ = 1/(1 + exp(−g)); dUp = dy·g·σ; dGate = dy·up·σ·(1 + g·(1 − σ)).
struct Gradients { float gate, up; };
__device__ __forceinline__ Gradients swiglu_gradients(float d, float g, float u) {
    const float sigmoid = 1.0f / one_plus_exp_minus(g);
    const float slope = __fadd_rn(1.0f, __fmul_rn(g, 1.0f - sigmoid));  // not fma(g, 1 − σ, 1): the CPU rounds twice
    return Gradients{d * u * sigmoid * slope, d * g * sigmoid};
}

}  // namespace swiglu_detail

// swiglu_forward — y = silu(gate) · up.
//   y, gate, up: [n]; y may alias gate or up. Grid: any (grid-stride); block: 256; float4 when all three are 16-byte
//   aligned. Saves nothing: the backward takes gate and up again.
extern "C" __global__ void __launch_bounds__(256) swiglu_forward(float* y, const float* gate, const float* up, int n) {
    using namespace swiglu_detail;
    const int stride = grid_stride(), first = grid_first();
    int done = 0;
    if (aligned16(y) && aligned16(gate) && aligned16(up)) {
        const int n4 = n / 4;
        for (int q = first; q < n4; q += stride) {
            const float4 g = load_float4(gate + 4 * q);
            const float4 u = load_float4(up + 4 * q);
            store_float4(y + 4 * q, make_float4(swiglu(g.x, u.x), swiglu(g.y, u.y), swiglu(g.z, u.z), swiglu(g.w, u.w)));
        }
        done = 4 * n4;
    }
    for (int i = done + first; i < n; i += stride) y[i] = swiglu(gate[i], up[i]);
}

// swiglu_backward — dUp = dy·silu(gate) (as dy·gate·σ); dGate = dy·up·σ(gate)·(1 + gate·(1 − σ(gate))).
//   d_gate, d_up, dy, gate, up: [n]; d_gate and d_up may alias any input (the engine puts d_gate over dy), not each
//   other. Grid/block and vectorization as swiglu_forward.
extern "C" __global__ void __launch_bounds__(256) swiglu_backward(float* d_gate, float* d_up, const float* dy, const float* gate, const float* up, int n) {
    using namespace swiglu_detail;
    const int stride = grid_stride(), first = grid_first();
    int done = 0;
    if (aligned16(d_gate) && aligned16(d_up) && aligned16(dy) && aligned16(gate) && aligned16(up)) {
        const int n4 = n / 4;
        for (int q = first; q < n4; q += stride) {
            const float4 d = load_float4(dy + 4 * q);
            const float4 g = load_float4(gate + 4 * q);
            const float4 u = load_float4(up + 4 * q);
            const Gradients a = swiglu_gradients(d.x, g.x, u.x), b = swiglu_gradients(d.y, g.y, u.y);
            const Gradients c = swiglu_gradients(d.z, g.z, u.z), e = swiglu_gradients(d.w, g.w, u.w);
            store_float4(d_gate + 4 * q, make_float4(a.gate, b.gate, c.gate, e.gate));
            store_float4(d_up + 4 * q, make_float4(a.up, b.up, c.up, e.up));
        }
        done = 4 * n4;
    }
    for (int i = done + first; i < n; i += stride) {
        const Gradients r = swiglu_gradients(dy[i], gate[i], up[i]);
        d_gate[i] = r.gate;
        d_up[i] = r.up;
    }
}

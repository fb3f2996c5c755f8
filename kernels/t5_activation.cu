// t5_activation.cu — T5's feed-forward activations, elementwise: v1.0's ReLU and v1.1's gated GELU
// (y = gelu_new(gate) ⊙ linear). Mirrors src/SoftPrompt/Cpu/ReluOps.cs and GatedGeluOps.cs one-to-one.
// Launchers: src/SoftPrompt/Cuda/Kernels/T5Activation.cs. Tests: tests/SoftPrompt.Tests/Kernels/T5KernelActivationTests.cs.
//
// Every kernel is a grid-stride loop (block 256, the launcher caps the grid) over n elements; a thread handles float4s
// when every buffer is 16-byte aligned (then the n % 4 tail element-wise), single floats otherwise. Each element is read
// by the thread that writes it, before it writes it, so outputs may alias inputs (exceptions noted per kernel).
#include "common.cuh"
#include "kernel_helpers.cuh"

namespace t5_activation_detail {

// max(x, 0) with the CPU op's edge cases: −0 → +0, NaN propagates.
__device__ __forceinline__ float relu(float x) { return x <= 0.0f ? 0.0f : x; }
__device__ __forceinline__ float relu_grad(float dy, float x) { return x > 0.0f ? dy : 0.0f; }

}  // namespace t5_activation_detail

// relu_forward — y = max(x, 0) (nn.ReLU; −0 → +0, NaN stays NaN).
//   y, x: [n]; y may alias x. Grid: any (grid-stride); block: 256; float4 when y and x are 16-byte aligned.
extern "C" __global__ void __launch_bounds__(256) relu_forward(float* y, const float* x, int n) {
    using namespace t5_activation_detail;
    const int stride = grid_stride(), first = grid_first();
    int done = 0;
    if (aligned16(y) && aligned16(x)) {
        const int n4 = n / 4;
        for (int q = first; q < n4; q += stride) {
            const float4 v = load_float4(x + 4 * q);
            store_float4(y + 4 * q, make_float4(relu(v.x), relu(v.y), relu(v.z), relu(v.w)));
        }
        done = 4 * n4;
    }
    for (int i = done + first; i < n; i += stride) y[i] = relu(x[i]);
}

// relu_backward — dx = x > 0 ? dy : 0 (x the pre-activation; the gradient at 0 is 0).
//   dx, dy, x: [n]; dx may alias dy. Grid/block and vectorization as relu_forward.
extern "C" __global__ void __launch_bounds__(256) relu_backward(float* dx, const float* dy, const float* x, int n) {
    using namespace t5_activation_detail;
    const int stride = grid_stride(), first = grid_first();
    int done = 0;
    if (aligned16(dx) && aligned16(dy) && aligned16(x)) {
        const int n4 = n / 4;
        for (int q = first; q < n4; q += stride) {
            const float4 v = load_float4(x + 4 * q);
            const float4 g = load_float4(dy + 4 * q);
            store_float4(dx + 4 * q, make_float4(relu_grad(g.x, v.x), relu_grad(g.y, v.y), relu_grad(g.z, v.z), relu_grad(g.w, v.w)));
        }
        done = 4 * n4;
    }
    for (int i = done + first; i < n; i += stride) dx[i] = relu_grad(dy[i], x[i]);
}

// gated_gelu_forward — y = gelu_new(gate) · linear (T5 v1.1's feed-forward: gate = wi_0·x, linear = wi_1·x).
//   y, gate, linear: [n]; y may alias gate or linear. Grid/block and vectorization as relu_forward.
extern "C" __global__ void __launch_bounds__(256) gated_gelu_forward(float* y, const float* gate, const float* linear, int n) {
    using namespace t5_activation_detail;
    const int stride = grid_stride(), first = grid_first();
    int done = 0;
    if (aligned16(y) && aligned16(gate) && aligned16(linear)) {
        const int n4 = n / 4;
        for (int q = first; q < n4; q += stride) {
            const float4 g = load_float4(gate + 4 * q);
            const float4 l = load_float4(linear + 4 * q);
            store_float4(y + 4 * q, make_float4(gelu_tanh(g.x) * l.x, gelu_tanh(g.y) * l.y, gelu_tanh(g.z) * l.z, gelu_tanh(g.w) * l.w));
        }
        done = 4 * n4;
    }
    for (int i = done + first; i < n; i += stride) y[i] = gelu_tanh(gate[i]) * linear[i];
}

// gated_gelu_backward — dLinear = dy · gelu_new(gate); dGate = (dy · linear) · gelu_new'(gate) (the CPU op's order).
//   d_gate, d_linear, dy, gate, linear: [n]; d_gate and d_linear may alias any input but not each other.
//   Grid/block and vectorization as relu_forward.
extern "C" __global__ void __launch_bounds__(256) gated_gelu_backward(float* d_gate, float* d_linear, const float* dy, const float* gate, const float* linear, int n) {
    using namespace t5_activation_detail;
    const int stride = grid_stride(), first = grid_first();
    int done = 0;
    if (aligned16(d_gate) && aligned16(d_linear) && aligned16(dy) && aligned16(gate) && aligned16(linear)) {
        const int n4 = n / 4;
        for (int q = first; q < n4; q += stride) {
            const float4 d = load_float4(dy + 4 * q);
            const float4 g = load_float4(gate + 4 * q);
            const float4 l = load_float4(linear + 4 * q);
            const float4 dl = make_float4(d.x * gelu_tanh(g.x), d.y * gelu_tanh(g.y), d.z * gelu_tanh(g.z), d.w * gelu_tanh(g.w));
            const float4 dg = make_float4(d.x * l.x * gelu_tanh_derivative(g.x), d.y * l.y * gelu_tanh_derivative(g.y),
                                          d.z * l.z * gelu_tanh_derivative(g.z), d.w * l.w * gelu_tanh_derivative(g.w));
            store_float4(d_linear + 4 * q, dl);
            store_float4(d_gate + 4 * q, dg);
        }
        done = 4 * n4;
    }
    for (int i = done + first; i < n; i += stride) {
        const float d = dy[i], g = gate[i], l = linear[i];
        d_linear[i] = d * gelu_tanh(g);
        d_gate[i] = d * l * gelu_tanh_derivative(g);
    }
}

// activation.cu — elementwise kernels: GPT-2's tanh GELU (gelu_new) forward/backward, and the bias(+residual) fill
// that precedes a beta = 1 GEMM. Mirrors src/SoftPrompt/Cpu/GeluOps.cs one-to-one.
// Launchers: src/SoftPrompt/Cuda/Kernels/Activation.cs. Tests: tests/SoftPrompt.Tests/Kernels/ActivationKernelTests.cs.
#include "common.cuh"
#include "kernel_helpers.cuh"

// gelu_forward — y = 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))) (Hugging Face gelu_new).
//   y, x: [n]; y may alias x (in place).
//   Grid: any (the launcher caps it; grid-stride loop); block: 256. Each thread handles float4s when y and x are
//   16-byte aligned (then the n % 4 tail element-wise), single floats otherwise.
extern "C" __global__ void __launch_bounds__(256) gelu_forward(float* y, const float* x, int n) {
    const int stride = grid_stride(), first = grid_first();
    int done = 0;
    if (aligned16(y) && aligned16(x)) {
        const int n4 = n / 4;
        for (int q = first; q < n4; q += stride) {
            const float4 v = load_float4(x + 4 * q);
            store_float4(y + 4 * q, make_float4(gelu_tanh(v.x), gelu_tanh(v.y), gelu_tanh(v.z), gelu_tanh(v.w)));
        }
        done = 4 * n4;
    }
    for (int i = done + first; i < n; i += stride) y[i] = gelu_tanh(x[i]);
}

// gelu_backward — dx = dy · gelu'(x).
//   dx, dy, x: [n]; dx may alias dy (in place). Grid/block and vectorization as gelu_forward.
extern "C" __global__ void __launch_bounds__(256) gelu_backward(float* dx, const float* dy, const float* __restrict__ x, int n) {
    const int stride = grid_stride(), first = grid_first();
    int done = 0;
    if (aligned16(dx) && aligned16(dy) && aligned16(x)) {
        const int n4 = n / 4;
        for (int q = first; q < n4; q += stride) {
            const float4 v = load_float4(x + 4 * q);
            const float4 g = load_float4(dy + 4 * q);
            store_float4(dx + 4 * q, make_float4(g.x * gelu_tanh_derivative(v.x), g.y * gelu_tanh_derivative(v.y),
                                                 g.z * gelu_tanh_derivative(v.z), g.w * gelu_tanh_derivative(v.w)));
        }
        done = 4 * n4;
    }
    for (int i = done + first; i < n; i += stride) dx[i] = dy[i] * gelu_tanh_derivative(x[i]);
}

// bias_residual — y[r, c] = (residual ? residual[r, c] : 0) + bias[c]: the initial value of a GEMM output that
// then accumulates x·W with beta = 1 (so bias and residual add cost no extra pass over y).
//   y: [N, C] out; residual: [N, C] or null; bias: [C]. y must not alias residual. N·C < 2^31.
//   Grid: any (the launcher caps it; grid-stride over the N·C elements, as N·C/4 float4s when C % 4 == 0 and
//   y, residual, bias are 16-byte aligned); block: 256.
extern "C" __global__ void __launch_bounds__(256) bias_residual(float* __restrict__ y, const float* __restrict__ residual, const float* __restrict__ bias, int rows, int channels) {
    const int stride = grid_stride(), first = grid_first();
    const int n = rows * channels;
    if ((channels & 3) == 0 && aligned16(y) && aligned16(residual) && aligned16(bias)) {
        const int c4 = channels / 4;
        for (int q = first; q < n / 4; q += stride) {
            const float4 b = load_float4(bias + 4 * (q % c4));
            float4 v = residual ? load_float4(residual + 4 * q) : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
            v.x += b.x; v.y += b.y; v.z += b.z; v.w += b.w;
            store_float4(y + 4 * q, v);
        }
    } else {
        for (int i = first; i < n; i += stride) y[i] = (residual ? residual[i] : 0.0f) + bias[i % channels];
    }
}

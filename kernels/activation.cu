// activation.cu — every elementwise activation, forward and input gradient, through one grid-stride map: T5 v1.0's ReLU,
// T5 v1.1's gated GELU (gelu_new(gate) ⊙ linear), Llama's SwiGLU (silu(gate) ⊙ up); and the *_bf16_io variants of bf16
// precision (below). GPT-2's GELU has no kernel: it is the epilogue of c_fc's GEMM (cuBLASLt GELU_AUX_BIAS, DGELU in
// the reverse pass). Mirrors src/SoftPrompt/Cpu/ReluOps.cs, GatedGeluOps.cs and SwiGluOps.cs one-to-one, in their order
// of operations.
// Launchers: src/SoftPrompt/Cuda/Kernels/Activation.cs. Tests: tests/SoftPrompt.Tests/Kernels/ActivationKernelTests.cs,
// T5KernelActivationTests.cs, LlamaKernelTests.cs.
//
// Every activation kernel is a grid-stride loop (block 256, the launcher caps the grid) over n elements; a thread handles
// float4s when every buffer is 16-byte aligned (then the n % 4 tail element-wise), single floats otherwise. Each element
// is read by the thread that writes it, before it writes it, so outputs may alias inputs (exceptions noted per kernel).
#include "common.cuh"
#include "kernel_helpers.cuh"

namespace activation_detail {

// out[k][i] = f(v) for i < n, v = the element's inputs widened to float: load4(v4, q) fills float v4[INS][4] with
// elements 4q..4q+3, load1(v1, i) fills float v1[INS] with element i. OUT = float, or bf16 for an output only a bf16 GEMM
// reads (each value rounded to nearest even as it is stored). `aligned`: every buffer is 16-byte aligned.
template <int OUTS, int INS, class OUT, class LOAD4, class LOAD1, class F>
__device__ __forceinline__ void map_loaded(OUT* const (&out)[OUTS], bool aligned, int n, LOAD4 load4, LOAD1 load1, F f) {
    const int stride = grid_stride(), first = grid_first();
    for (int k = 0; k < OUTS; ++k) aligned = aligned && aligned16(out[k]);
    int done = 0;
    if (aligned) {
        const int n4 = n / 4;
        for (int q = first; q < n4; q += stride) {
            float v[INS][4], o[OUTS][4];
            load4(v, q);
            for (int j = 0; j < 4; ++j) {
                float vj[INS], oj[OUTS];
                for (int k = 0; k < INS; ++k) vj[k] = v[k][j];
                f(oj, vj);
                for (int k = 0; k < OUTS; ++k) o[k][j] = oj[k];
            }
            for (int k = 0; k < OUTS; ++k) store_vec<4>(out[k] + 4 * q, o[k]);
        }
        done = 4 * n4;
    }
    for (int i = done + first; i < n; i += stride) {
        float vi[INS], oi[OUTS];
        load1(vi, i);
        f(oi, vi);
        for (int k = 0; k < OUTS; ++k) store_value(out[k] + i, oi[k]);
    }
}

// out[k][i] = f(in[0][i], …) for i < n: f(float (&o)[OUTS], const float (&v)[INS]) maps one element. Every input has
// type IN (float, or bf16: pre-activations a bf16-output GEMM wrote), widened exactly.
template <int OUTS, int INS, class F, class OUT = float, class IN = float>
__device__ __forceinline__ void map(OUT* const (&out)[OUTS], const IN* const (&in)[INS], int n, F f) {
    bool aligned = true;
    for (int k = 0; k < INS; ++k) aligned = aligned && aligned16(in[k]);
    map_loaded<OUTS, INS>(out, aligned, n,
        [&](float (&v)[INS][4], int q) { for (int k = 0; k < INS; ++k) load_vec<4>(v[k], in[k] + 4 * q); },
        [&](float (&v)[INS], int i) { for (int k = 0; k < INS; ++k) v[k] = load_value(in[k] + i); }, f);
}

// A backward map: v = {dy[i] (fp32, the down projection's input gradient), saved[0][i], …} with the saved
// pre-activations bf16; outputs bf16 (the input-gradient GEMMs' operands).
template <int OUTS, int SAVED, class F>
__device__ __forceinline__ void map_backward_bf16(bf16* const (&out)[OUTS], const float* dy, const bf16* const (&saved)[SAVED], int n, F f) {
    constexpr int INS = SAVED + 1;
    bool aligned = aligned16(dy);
    for (int k = 0; k < SAVED; ++k) aligned = aligned && aligned16(saved[k]);
    map_loaded<OUTS, INS>(out, aligned, n,
        [&](float (&v)[INS][4], int q) {
            load_vec<4>(v[0], dy + 4 * q);
            for (int k = 0; k < SAVED; ++k) load_vec<4>(v[k + 1], saved[k] + 4 * q);
        },
        [&](float (&v)[INS], int i) {
            v[0] = dy[i];
            for (int k = 0; k < SAVED; ++k) v[k + 1] = load_value(saved[k] + i);
        }, f);
}

// max(x, 0) with the CPU op's edge cases: −0 → +0, NaN propagates.
__device__ __forceinline__ float relu(float x) { return x <= 0.0f ? 0.0f : x; }

// 1 + exp(−g), with exp rounded first: a plain `1.0f + expf(-g)` lets nvcc fuse the add into expf's last multiply.
// SwiGLU keeps the CPU op's arithmetic operation by operation: expf (not __expf), the same divisions, the products in the
// same order, and __fmul_rn / __fadd_rn where nvcc would otherwise contract a product and a sum into one FMA. What is left
// between the two is expf's last bits (CUDA's expf is within 2 ulp; the emulator uses libm's).
__device__ __forceinline__ float one_plus_exp_minus(float g) { return __fadd_rn(1.0f, expf(-g)); }

// The maps shared by the fp32 and the bf16 kernels, so both round the same float values.
__device__ __forceinline__ float gated_gelu(float gate, float linear) { return gelu_tanh(gate) * linear; }
__device__ __forceinline__ float swiglu(float gate, float up) { return gate / one_plus_exp_minus(gate) * up; }

// v = {dy, gate, linear} → o = {dGate, dLinear}.
__device__ __forceinline__ void gated_gelu_backward(float (&o)[2], const float (&v)[3]) {
    o[1] = v[0] * gelu_tanh(v[1]);
    o[0] = v[0] * v[2] * gelu_tanh_derivative(v[1]);
}

// v = {dy, gate, up} → o = {dGate, dUp}.
__device__ __forceinline__ void swiglu_backward(float (&o)[2], const float (&v)[3]) {
    const float d = v[0], g = v[1], u = v[2];
    const float sigmoid = 1.0f / one_plus_exp_minus(g);
    const float slope = __fadd_rn(1.0f, __fmul_rn(g, 1.0f - sigmoid));  // not fma(g, 1 − σ, 1): the CPU rounds twice
    o[0] = d * u * sigmoid * slope;
    o[1] = d * g * sigmoid;
}

}  // namespace activation_detail

// relu_forward — y = max(x, 0) (nn.ReLU; −0 → +0, NaN stays NaN). y, x: [n]; y may alias x.
extern "C" __global__ void __launch_bounds__(256) relu_forward(float* y, const float* x, int n) {
    activation_detail::map<1, 1>({y}, {x}, n, [](float (&o)[1], const float (&v)[1]) { o[0] = activation_detail::relu(v[0]); });
}

// relu_forward_bf16 — relu_forward with y in bf16 (exact: a bf16-rounded max(x, 0)): wo's operand. y: [n] bf16.
extern "C" __global__ void __launch_bounds__(256) relu_forward_bf16(bf16* y, const float* x, int n) {
    activation_detail::map<1, 1>({y}, {x}, n, [](float (&o)[1], const float (&v)[1]) { o[0] = activation_detail::relu(v[0]); });
}

// relu_backward — dx = x > 0 ? dy : 0 (x the pre-activation; the gradient at 0 is 0). dx, dy, x: [n]; dx may alias dy.
extern "C" __global__ void __launch_bounds__(256) relu_backward(float* dx, const float* dy, const float* x, int n) {
    activation_detail::map<1, 2>({dx}, {dy, x}, n, [](float (&o)[1], const float (&v)[2]) { o[0] = v[1] > 0.0f ? v[0] : 0.0f; });
}

// gated_gelu_forward — y = gelu_new(gate) · linear (T5 v1.1's feed-forward: gate = wi_0·x, linear = wi_1·x).
//   y, gate, linear: [n]; y may alias gate or linear.
extern "C" __global__ void __launch_bounds__(256) gated_gelu_forward(float* y, const float* gate, const float* linear, int n) {
    activation_detail::map<1, 2>({y}, {gate, linear}, n, [](float (&o)[1], const float (&v)[2]) { o[0] = activation_detail::gated_gelu(v[0], v[1]); });
}

// gated_gelu_forward_bf16 — gated_gelu_forward with y in bf16 (rounded to nearest even): wo's operand. y: [n] bf16.
extern "C" __global__ void __launch_bounds__(256) gated_gelu_forward_bf16(bf16* y, const float* gate, const float* linear, int n) {
    activation_detail::map<1, 2>({y}, {gate, linear}, n, [](float (&o)[1], const float (&v)[2]) { o[0] = activation_detail::gated_gelu(v[0], v[1]); });
}

// gated_gelu_backward — dLinear = dy · gelu_new(gate); dGate = (dy · linear) · gelu_new'(gate) (the CPU op's order).
//   d_gate, d_linear, dy, gate, linear: [n]; d_gate and d_linear may alias any input but not each other.
extern "C" __global__ void __launch_bounds__(256) gated_gelu_backward(float* d_gate, float* d_linear, const float* dy, const float* gate, const float* linear, int n) {
    activation_detail::map<2, 3>({d_gate, d_linear}, {dy, gate, linear}, n, [](float (&o)[2], const float (&v)[3]) { activation_detail::gated_gelu_backward(o, v); });
}

// swiglu_forward — y = silu(gate) · up = gate / (1 + exp(−gate)) · up (Llama: gate = gate_proj·x, up = up_proj·x).
//   y, gate, up: [n]; y may alias gate or up. Saves nothing: the backward takes gate and up again.
extern "C" __global__ void __launch_bounds__(256) swiglu_forward(float* y, const float* gate, const float* up, int n) {
    activation_detail::map<1, 2>({y}, {gate, up}, n, [](float (&o)[1], const float (&v)[2]) { o[0] = activation_detail::swiglu(v[0], v[1]); });
}

// swiglu_forward_bf16 — swiglu_forward with y in bf16 (rounded to nearest even): down_proj's operand. y: [n] bf16.
extern "C" __global__ void __launch_bounds__(256) swiglu_forward_bf16(bf16* y, const float* gate, const float* up, int n) {
    activation_detail::map<1, 2>({y}, {gate, up}, n, [](float (&o)[1], const float (&v)[2]) { o[0] = activation_detail::swiglu(v[0], v[1]); });
}

// swiglu_backward — σ = 1/(1 + exp(−gate)); dUp = dy·gate·σ; dGate = dy·up·σ·(1 + gate·(1 − σ)).
//   d_gate, d_up, dy, gate, up: [n]; d_gate and d_up may alias any input (the engine puts d_gate over dy), not each other.
extern "C" __global__ void __launch_bounds__(256) swiglu_backward(float* d_gate, float* d_up, const float* dy, const float* gate, const float* up, int n) {
    activation_detail::map<2, 3>({d_gate, d_up}, {dy, gate, up}, n, [](float (&o)[2], const float (&v)[3]) { activation_detail::swiglu_backward(o, v); });
}

// The *_bf16_io kernels: the MLP in bf16 precision. The pre-activations are bf16 (the up-projection GEMMs write them
// in bf16, rounded once from their fp32 sums, and the plan saves them so), the forward output is bf16 (the down
// projection's operand), and the backward reads the fp32 incoming gradient dy (the down projection's input gradient)
// with the saved bf16 pre-activations and writes d(pre-activation) in bf16: the operand of the up projections'
// input-gradient GEMMs, with no convert_to_bf16 pass between. The math is the fp32 kernels' on the widened inputs,
// each output rounded to nearest even once. No output may alias an input of another type (fp32 dy).

// relu_forward_bf16_io — relu_forward with x and y bf16 (exact). y, x: [n] bf16; y may alias x.
extern "C" __global__ void __launch_bounds__(256) relu_forward_bf16_io(bf16* y, const bf16* x, int n) {
    activation_detail::map<1, 1>({y}, {x}, n, [](float (&o)[1], const float (&v)[1]) { o[0] = activation_detail::relu(v[0]); });
}

// relu_backward_bf16_io — dx = bf16(x > 0 ? dy : 0). dx, x: [n] bf16; dy: [n] fp32.
extern "C" __global__ void __launch_bounds__(256) relu_backward_bf16_io(bf16* dx, const float* dy, const bf16* x, int n) {
    activation_detail::map_backward_bf16<1, 1>({dx}, dy, {x}, n, [](float (&o)[1], const float (&v)[2]) { o[0] = v[1] > 0.0f ? v[0] : 0.0f; });
}

// gated_gelu_forward_bf16_io — gated_gelu_forward with gate, linear and y bf16. y, gate, linear: [n] bf16; y may alias either.
extern "C" __global__ void __launch_bounds__(256) gated_gelu_forward_bf16_io(bf16* y, const bf16* gate, const bf16* linear, int n) {
    activation_detail::map<1, 2>({y}, {gate, linear}, n, [](float (&o)[1], const float (&v)[2]) { o[0] = activation_detail::gated_gelu(v[0], v[1]); });
}

// gated_gelu_backward_bf16_io — gated_gelu_backward with gate, linear and both outputs bf16, dy fp32.
//   d_gate, d_linear, gate, linear: [n] bf16; dy: [n] fp32. d_gate and d_linear may alias gate or linear, not each other.
extern "C" __global__ void __launch_bounds__(256) gated_gelu_backward_bf16_io(bf16* d_gate, bf16* d_linear, const float* dy, const bf16* gate, const bf16* linear, int n) {
    activation_detail::map_backward_bf16<2, 2>({d_gate, d_linear}, dy, {gate, linear}, n, [](float (&o)[2], const float (&v)[3]) { activation_detail::gated_gelu_backward(o, v); });
}

// swiglu_forward_bf16_io — swiglu_forward with gate, up and y bf16. y, gate, up: [n] bf16; y may alias either.
extern "C" __global__ void __launch_bounds__(256) swiglu_forward_bf16_io(bf16* y, const bf16* gate, const bf16* up, int n) {
    activation_detail::map<1, 2>({y}, {gate, up}, n, [](float (&o)[1], const float (&v)[2]) { o[0] = activation_detail::swiglu(v[0], v[1]); });
}

// swiglu_backward_bf16_io — swiglu_backward with gate, up and both outputs bf16, dy fp32.
//   d_gate, d_up, gate, up: [n] bf16; dy: [n] fp32. d_gate and d_up may alias gate or up, not each other.
extern "C" __global__ void __launch_bounds__(256) swiglu_backward_bf16_io(bf16* d_gate, bf16* d_up, const float* dy, const bf16* gate, const bf16* up, int n) {
    activation_detail::map_backward_bf16<2, 2>({d_gate, d_up}, dy, {gate, up}, n, [](float (&o)[2], const float (&v)[3]) { activation_detail::swiglu_backward(o, v); });
}

// convert_to_bf16 — y[i] = bf16(x[i]), rounded to nearest even (ElementConversion.SingleToBFloat16 on the host): the
// activation operand of a bf16 GEMM. x: [n] fp32, y: [n] bf16 (NaN stays NaN). Grid-stride, one element per step.
extern "C" __global__ void __launch_bounds__(256) convert_to_bf16(bf16* y, const float* x, int n) {
    for (int i = grid_first(); i < n; i += grid_stride()) y[i] = to_bf16(x[i]);
}

// convert_from_bf16 — y[i] = x[i] widened to fp32 (exact): a bf16 GEMM output handed to an fp32 kernel, e.g. the cached
// decoding step's q|k|v (rounded as the full forward's bf16 q|k|v, then read by the fp32 KV cache and decode attention).
// x: [n] bf16, y: [n] fp32. Grid-stride, one element per step.
extern "C" __global__ void __launch_bounds__(256) convert_from_bf16(float* y, const bf16* x, int n) {
    for (int i = grid_first(); i < n; i += grid_stride()) y[i] = to_float(x[i]);
}

// round_to_bf16 — y[i] = float(bf16(x[i])): x rounded to nearest even to a bf16 value, kept in fp32. For an fp32 kernel
// that must see the values a bf16 tensor of the full forward holds (T5's and Llama's cached decoding: q, k, v for decode attention,
// whose cache is fp32). x, y: [n] fp32; y may alias x. Grid-stride, one element per step.
extern "C" __global__ void __launch_bounds__(256) round_to_bf16(float* y, const float* x, int n) {
    for (int i = grid_first(); i < n; i += grid_stride()) y[i] = to_float(to_bf16(x[i]));
}

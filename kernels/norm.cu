// norm.cu — the norms over the last axis, one row walker for both: LayerNorm (GPT-2's ln_1, ln_2, ln_f: mean, biased
// variance, bias) and RMS norm (T5's "T5LayerNorm", Llama's RMSNorm: no mean, no bias). Forward saving the statistics,
// and the input-gradient backward with the residual add fused. Mirror src/SoftPrompt/Cpu/LayerNormOps.cs and
// RmsNormOps.cs one-to-one, in their order of operations.
// Launchers: src/SoftPrompt/Cuda/Kernels/Norm.cs. Tests: tests/SoftPrompt.Tests/Kernels/NormKernelTests.cs.
//
// Mapping (every kernel): one warp per row, 8 rows per 256-thread block, no __syncthreads and no shared memory: the
// reductions are warp butterflies. A row of up to 1024 channels (2048 in the forward when C % 4 == 0) is held in
// registers, so x (and dy) are read from global memory once; wider rows are streamed again from L1/L2 per pass.
// Vector (float4) accesses are used when C % 4 == 0 and every buffer is 16-byte aligned, scalar ones otherwise.
#include "common.cuh"
#include "kernel_helpers.cuh"

namespace norm_detail {

// Lane l owns the VEC-chunks l, l + 32, l + 64, … of a row. With SLOTS > 0 the first SLOTS chunks are all there are
// (C ≤ 32·VEC·SLOTS) and live in `cache` between passes (LOAD: this pass fills it); SLOTS == 0 streams the row from
// memory in every pass. f(c, values) sees each chunk the lane owns, in order.
template <int VEC, int SLOTS, bool LOAD, class F>
__device__ __forceinline__ void visit_row(float (&cache)[SLOTS > 0 ? SLOTS : 1][VEC], const float* row, int channels, F&& f) {
    constexpr int kStride = VEC * SP_WARP_SIZE;
    const int lane = static_cast<int>(lane_id());
    if constexpr (SLOTS > 0) {
#pragma unroll
        for (int i = 0; i < SLOTS; ++i) {
            const int c = VEC * lane + kStride * i;
            if (c >= channels) continue;
            if constexpr (LOAD) load_vec<VEC>(cache[i], row + c);
            f(c, cache[i]);
        }
    } else {
        for (int c = VEC * lane; c < channels; c += kStride) {
            float v[VEC];
            load_vec<VEC>(v, row + c);
            f(c, v);
        }
    }
}

// The same over two rows at once (the backward's x and dy).
template <int VEC, int SLOTS, bool LOAD, class F>
__device__ __forceinline__ void visit_rows(float (&cache_a)[SLOTS > 0 ? SLOTS : 1][VEC], float (&cache_b)[SLOTS > 0 ? SLOTS : 1][VEC],
                                           const float* row_a, const float* row_b, int channels, F&& f) {
    constexpr int kStride = VEC * SP_WARP_SIZE;
    const int lane = static_cast<int>(lane_id());
    if constexpr (SLOTS > 0) {
#pragma unroll
        for (int i = 0; i < SLOTS; ++i) {
            const int c = VEC * lane + kStride * i;
            if (c >= channels) continue;
            if constexpr (LOAD) { load_vec<VEC>(cache_a[i], row_a + c); load_vec<VEC>(cache_b[i], row_b + c); }
            f(c, cache_a[i], cache_b[i]);
        }
    } else {
        for (int c = VEC * lane; c < channels; c += kStride) {
            float a[VEC], b[VEC];
            load_vec<VEC>(a, row_a + c);
            load_vec<VEC>(b, row_b + c);
            f(c, a, b);
        }
    }
}

// Forward of one row by one warp. CENTERED (LayerNorm): two-pass mean/variance as the CPU op (biased variance, no
// E[x²] − mean²), y = (x − mean)·rstd·w + b. Otherwise (RMS): rstd = 1/sqrt(Σx²/C + eps), y = (x·rstd)·w. y may alias x
// for RMS (every lane reads a chunk before it writes it).
template <bool CENTERED, int VEC, int SLOTS, class OUT>
__device__ __forceinline__ void forward_row(OUT* y, float* __restrict__ mean, float* __restrict__ rstd, const float* x, const float* __restrict__ weight,
                                            const float* __restrict__ bias, int row, int channels, float epsilon) {
    const float* xr = x + static_cast<long long>(row) * channels;
    OUT* yr = y + static_cast<long long>(row) * channels;
    const float count = static_cast<float>(channels);
    float cache[SLOTS > 0 ? SLOTS : 1][VEC];

    float m = 0.0f, squares = 0.0f;
    if constexpr (CENTERED) {
        float sum = 0.0f;
        visit_row<VEC, SLOTS, true>(cache, xr, channels, [&](int, const float (&v)[VEC]) { for (int j = 0; j < VEC; ++j) sum += v[j]; });
        m = warp_reduce_sum(sum) / count;
        visit_row<VEC, SLOTS, false>(cache, xr, channels, [&](int, const float (&v)[VEC]) {
            for (int j = 0; j < VEC; ++j) { const float d = v[j] - m; squares += d * d; }
        });
    } else {
        visit_row<VEC, SLOTS, true>(cache, xr, channels, [&](int, const float (&v)[VEC]) { for (int j = 0; j < VEC; ++j) squares = fmaf(v[j], v[j], squares); });
    }
    const float s = 1.0f / sqrtf(warp_reduce_sum(squares) / count + epsilon);

    visit_row<VEC, SLOTS, false>(cache, xr, channels, [&](int c, const float (&v)[VEC]) {
        float w[VEC], out[VEC];
        load_vec<VEC>(w, weight + c);
        if constexpr (CENTERED) {
            float b[VEC];
            load_vec<VEC>(b, bias + c);
            for (int j = 0; j < VEC; ++j) out[j] = fmaf((v[j] - m) * s, w[j], b[j]);
        } else {
            for (int j = 0; j < VEC; ++j) out[j] = (v[j] * s) * w[j];
        }
        store_vec<VEC>(yr + c, out);
    });
    if (lane_id() == 0) {
        if (CENTERED && mean) mean[row] = m;
        if (rstd) rstd[row] = s;
    }
}

// Backward of one row by one warp, ADDED into dx. g = dy·w, x̂ = (x − mean)·rstd (x·rstd for RMS);
// CENTERED: dx += rstd·(g − mean(g) − x̂·mean(g·x̂)); RMS: dx += rstd·(g − x̂·mean(g·x̂)). dx_bf16 non-null: the updated
// dx row also goes there rounded to bf16 (the next GEMM's operand, from the values just stored).
template <bool CENTERED, int VEC, int SLOTS>
__device__ __forceinline__ void backward_row(float* __restrict__ dx, bf16* __restrict__ dx_bf16, const float* __restrict__ dy, const float* __restrict__ x,
                                             const float* __restrict__ weight, float m, float s, int row, int channels) {
    const long long offset = static_cast<long long>(row) * channels;
    float* dxr = dx + offset;
    const float count = static_cast<float>(channels);
    float xc[SLOTS > 0 ? SLOTS : 1][VEC], dyc[SLOTS > 0 ? SLOTS : 1][VEC];

    float sum_g = 0.0f, sum_gx = 0.0f;
    visit_rows<VEC, SLOTS, true>(xc, dyc, x + offset, dy + offset, channels, [&](int c, const float (&xv)[VEC], const float (&dv)[VEC]) {
        float w[VEC];
        load_vec<VEC>(w, weight + c);
        for (int j = 0; j < VEC; ++j) {
            if constexpr (CENTERED) {
                const float g = dv[j] * w[j];
                sum_g += g;
                sum_gx += g * (xv[j] - m) * s;
            } else {
                sum_gx += dv[j] * w[j] * xv[j] * s;
            }
        }
    });
    const float mean_g = CENTERED ? warp_reduce_sum(sum_g) / count : 0.0f;
    const float mean_gx = warp_reduce_sum(sum_gx) / count;

    visit_rows<VEC, SLOTS, false>(xc, dyc, x + offset, dy + offset, channels, [&](int c, const float (&xv)[VEC], const float (&dv)[VEC]) {
        float w[VEC], out[VEC];
        load_vec<VEC>(w, weight + c);
        load_vec<VEC>(out, dxr + c);
        for (int j = 0; j < VEC; ++j) {
            if constexpr (CENTERED) out[j] += s * (dv[j] * w[j] - mean_g - (xv[j] - m) * s * mean_gx);
            else out[j] += s * (dv[j] * w[j] - xv[j] * s * mean_gx);
        }
        store_vec<VEC>(dxr + c, out);
        if (dx_bf16) store_vec<VEC>(dx_bf16 + offset + c, out);
    });
}

// OUT = float, or bf16 (the norm's output feeds only bf16 GEMMs: each value is the fp32 one rounded to nearest even, so
// the result is bit for bit the fp32 kernel's output passed through convert_to_bf16, without that pass).
template <bool CENTERED, class OUT>
__device__ __forceinline__ void forward(OUT* y, float* mean, float* rstd, const float* x, const float* weight, const float* bias, int rows, int channels, float epsilon) {
    const int row = grid_warp();
    if (row >= rows) return;  // whole warps exit together: the row is warp-uniform
    const bool vec = (channels & 3) == 0 && aligned16(y) && aligned16(x) && aligned16(weight) && (!CENTERED || aligned16(bias));
    if (vec) {
        if (channels <= 4 * SP_WARP_SIZE * 8) forward_row<CENTERED, 4, 8, OUT>(y, mean, rstd, x, weight, bias, row, channels, epsilon);
        else if (channels <= 4 * SP_WARP_SIZE * 16) forward_row<CENTERED, 4, 16, OUT>(y, mean, rstd, x, weight, bias, row, channels, epsilon);
        else forward_row<CENTERED, 4, 0, OUT>(y, mean, rstd, x, weight, bias, row, channels, epsilon);
    } else {
        if (channels <= SP_WARP_SIZE * 32) forward_row<CENTERED, 1, 32, OUT>(y, mean, rstd, x, weight, bias, row, channels, epsilon);
        else forward_row<CENTERED, 1, 0, OUT>(y, mean, rstd, x, weight, bias, row, channels, epsilon);
    }
}

template <bool CENTERED>
__device__ __forceinline__ void backward(float* dx, bf16* dx_bf16, const float* dy, const float* x, const float* weight, const float* mean, const float* rstd,
                                         int rows, int channels) {
    const int row = grid_warp();
    if (row >= rows) return;  // whole warps exit together: the row is warp-uniform
    const float m = CENTERED ? ldg(mean + row) : 0.0f, s = ldg(rstd + row);
    const bool vec = (channels & 3) == 0 && aligned16(dx) && aligned16(dy) && aligned16(x) && aligned16(weight) && aligned16(dx_bf16);
    if (vec) {
        if (channels <= 4 * SP_WARP_SIZE * 8) backward_row<CENTERED, 4, 8>(dx, dx_bf16, dy, x, weight, m, s, row, channels);
        else backward_row<CENTERED, 4, 0>(dx, dx_bf16, dy, x, weight, m, s, row, channels);
    } else {
        if (channels <= SP_WARP_SIZE * 32) backward_row<CENTERED, 1, 32>(dx, dx_bf16, dy, x, weight, m, s, row, channels);
        else backward_row<CENTERED, 1, 0>(dx, dx_bf16, dy, x, weight, m, s, row, channels);
    }
}

}  // namespace norm_detail

// layernorm_forward — y = (x − mean)·rstd·weight + bias over the last axis; saves mean and rstd for the backward.
//   y, x: [N, C] (y must not alias x: the backward needs x); weight, bias: [C]; mean, rstd: [N] out
//   (rstd = 1/sqrt(biased variance + epsilon)); either may be null (inference: nothing saved).
//   Grid: ceil(N / 8) blocks; block: 256 threads = 8 warps, one warp per row.
extern "C" __global__ void __launch_bounds__(256) layernorm_forward(float* y, float* __restrict__ mean, float* __restrict__ rstd, const float* x, const float* __restrict__ weight, const float* __restrict__ bias, int rows, int channels, float epsilon) {
    norm_detail::forward<true>(y, mean, rstd, x, weight, bias, rows, channels, epsilon);
}

// layernorm_forward_bf16 — layernorm_forward with y in bf16 ([N, C], each value the fp32 result rounded to nearest even;
//   mean and rstd fp32 as there): the input of a bf16 GEMM, made without a convert_to_bf16 pass. Grid and block as there.
extern "C" __global__ void __launch_bounds__(256) layernorm_forward_bf16(bf16* y, float* __restrict__ mean, float* __restrict__ rstd, const float* x, const float* __restrict__ weight, const float* __restrict__ bias, int rows, int channels, float epsilon) {
    norm_detail::forward<true>(y, mean, rstd, x, weight, bias, rows, channels, epsilon);
}

// layernorm_backward — input gradient only, ADDED into dx (the residual stream's gradient: the residual add is fused).
//   dx, dy, x: [N, C] (dx must not alias dy or x); weight: [C]; mean, rstd: [N] from layernorm_forward.
//   Grid: ceil(N / 8) blocks; block: 256 threads = 8 warps, one warp per row.
extern "C" __global__ void __launch_bounds__(256) layernorm_backward(float* __restrict__ dx, const float* __restrict__ dy, const float* __restrict__ x, const float* __restrict__ weight, const float* __restrict__ mean, const float* __restrict__ rstd, int rows, int channels) {
    norm_detail::backward<true>(dx, nullptr, dy, x, weight, mean, rstd, rows, channels);
}

// layernorm_backward_bf16 — layernorm_backward that also writes the updated dx in bf16: dx_bf16 [N, C] = to_bf16(dx after
//   the add), rounded once to nearest even, bit for bit convert_to_bf16 of layernorm_backward's dx without that pass (the
//   residual gradient stays fp32 in dx; the copy is the operand of the GEMM that reads it next). dx_bf16 must not alias
//   the others. Grid and block as layernorm_backward.
extern "C" __global__ void __launch_bounds__(256) layernorm_backward_bf16(float* __restrict__ dx, bf16* __restrict__ dx_bf16, const float* __restrict__ dy, const float* __restrict__ x, const float* __restrict__ weight, const float* __restrict__ mean, const float* __restrict__ rstd, int rows, int channels) {
    norm_detail::backward<true>(dx, dx_bf16, dy, x, weight, mean, rstd, rows, channels);
}

// rmsnorm_forward — y = x·rstd·weight over the last axis, rstd = 1/sqrt(mean(x²) + epsilon); saves rstd for the backward.
//   y, x: [N, C] (y may alias x); weight: [C]; rstd: [N] out, or null (inference: nothing saved).
//   Grid: ceil(N / 8) blocks; block: 256 threads = 8 warps, one warp per row.
extern "C" __global__ void __launch_bounds__(256) rmsnorm_forward(float* y, float* __restrict__ rstd, const float* x, const float* __restrict__ weight, int rows, int channels, float epsilon) {
    norm_detail::forward<false>(y, nullptr, rstd, x, weight, nullptr, rows, channels, epsilon);
}

// rmsnorm_forward_bf16 — rmsnorm_forward with y in bf16 ([N, C], rounded to nearest even; rstd fp32; y cannot alias x).
extern "C" __global__ void __launch_bounds__(256) rmsnorm_forward_bf16(bf16* y, float* __restrict__ rstd, const float* x, const float* __restrict__ weight, int rows, int channels, float epsilon) {
    norm_detail::forward<false>(y, nullptr, rstd, x, weight, nullptr, rows, channels, epsilon);
}

// rmsnorm_backward — input gradient only, ADDED into dx (the residual add is fused).
//   dx, dy, x: [N, C] (dx must not alias dy or x); weight: [C]; rstd: [N] from rmsnorm_forward.
//   Grid: ceil(N / 8) blocks; block: 256 threads = 8 warps, one warp per row.
extern "C" __global__ void __launch_bounds__(256) rmsnorm_backward(float* __restrict__ dx, const float* __restrict__ dy, const float* __restrict__ x, const float* __restrict__ weight, const float* __restrict__ rstd, int rows, int channels) {
    norm_detail::backward<false>(dx, nullptr, dy, x, weight, nullptr, rstd, rows, channels);
}

// rmsnorm_backward_bf16 — rmsnorm_backward that also writes the updated dx in bf16: dx_bf16 [N, C] = to_bf16(dx after the
//   add), rounded once to nearest even, bit for bit convert_to_bf16 of rmsnorm_backward's dx without that pass (the residual
//   gradient stays fp32 in dx; the copy is the operand of the GEMM that reads it next). dx_bf16 must not alias the others.
//   Grid and block as rmsnorm_backward.
extern "C" __global__ void __launch_bounds__(256) rmsnorm_backward_bf16(float* __restrict__ dx, bf16* __restrict__ dx_bf16, const float* __restrict__ dy, const float* __restrict__ x, const float* __restrict__ weight, const float* __restrict__ rstd, int rows, int channels) {
    norm_detail::backward<false>(dx, dx_bf16, dy, x, weight, nullptr, rstd, rows, channels);
}

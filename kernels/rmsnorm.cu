// rmsnorm.cu — RMS norm over the last axis without mean or bias (T5's "T5LayerNorm", Llama's RMSNorm): forward saving
// rstd, and the input-gradient backward with the residual add fused. Mirrors src/SoftPrompt/Cpu/RmsNormOps.cs one-to-one.
// Launchers: src/SoftPrompt/Cuda/Kernels/T5RmsNorm.cs. Tests: tests/SoftPrompt.Tests/Kernels/T5KernelRmsNormTests.cs.
//
// Mapping (both kernels, as layernorm.cu): one warp per row, 8 rows per 256-thread block, no __syncthreads and no
// shared memory: the reductions are warp butterflies. A row of up to 1024 channels (2048 in the forward when C % 4 == 0)
// is held in registers, so x (and dy) are read from global memory once; wider rows are streamed again from L1/L2 per
// pass. Vector (float4) accesses are used when C % 4 == 0 and every buffer is 16-byte aligned, scalar ones otherwise.
#include "common.cuh"
#include "kernel_helpers.cuh"

namespace rmsnorm_detail {

// Forward of one row by one warp. Lane l owns the VEC-chunks l, l + 32, l + 64, …; with SLOTS > 0 the first SLOTS
// chunks are all there are (C ≤ 32·VEC·SLOTS) and are kept in registers between the passes; SLOTS == 0 streams the
// row from memory in each pass. y may alias x: every lane reads an element before it writes it.
//   rstd = 1/sqrt(Σx²/C + eps); y = (x·rstd)·w (the CPU op's order of the two products).
template <int VEC, int SLOTS>
__device__ __forceinline__ void forward_row(float* y, float* __restrict__ rstd, const float* x, const float* __restrict__ weight,
                                            int row, int channels, float epsilon) {
    constexpr int kStride = VEC * SP_WARP_SIZE;
    const int lane = static_cast<int>(lane_id());
    const float* xr = x + static_cast<long long>(row) * channels;
    float* yr = y + static_cast<long long>(row) * channels;

    float cache[SLOTS > 0 ? SLOTS : 1][VEC];
    float squares = 0.0f;
    if constexpr (SLOTS > 0) {
#pragma unroll
        for (int i = 0; i < SLOTS; ++i) {
            const int c = VEC * lane + kStride * i;
            if (c < channels) load_vec<VEC>(cache[i], xr + c);
            else for (int j = 0; j < VEC; ++j) cache[i][j] = 0.0f;
            for (int j = 0; j < VEC; ++j) squares = fmaf(cache[i][j], cache[i][j], squares);
        }
    } else {
        for (int c = VEC * lane; c < channels; c += kStride) {
            float v[VEC];
            load_vec<VEC>(v, xr + c);
            for (int j = 0; j < VEC; ++j) squares = fmaf(v[j], v[j], squares);
        }
    }
    const float s = 1.0f / sqrtf(warp_reduce_sum(squares) / static_cast<float>(channels) + epsilon);

    auto write = [&](int c, const float (&v)[VEC]) {
        float w[VEC], out[VEC];
        load_vec<VEC>(w, weight + c);
        for (int j = 0; j < VEC; ++j) out[j] = (v[j] * s) * w[j];
        store_vec<VEC>(yr + c, out);
    };
    if constexpr (SLOTS > 0) {
#pragma unroll
        for (int i = 0; i < SLOTS; ++i) {
            const int c = VEC * lane + kStride * i;
            if (c < channels) write(c, cache[i]);
        }
    } else {
        for (int c = VEC * lane; c < channels; c += kStride) {
            float v[VEC];
            load_vec<VEC>(v, xr + c);
            write(c, v);
        }
    }
    if (lane == 0 && rstd) rstd[row] = s;
}

// Backward of one row by one warp (same chunk ownership and SLOTS meaning as forward_row; x and dy are cached).
//   g = dy·w, x̂ = x·rstd; dx += rstd·(g − x̂·mean(g·x̂)).
template <int VEC, int SLOTS>
__device__ __forceinline__ void backward_row(float* __restrict__ dx, const float* __restrict__ dy, const float* __restrict__ x,
                                             const float* __restrict__ weight, float s, int row, int channels) {
    constexpr int kStride = VEC * SP_WARP_SIZE;
    const int lane = static_cast<int>(lane_id());
    const long long offset = static_cast<long long>(row) * channels;
    const float* xr = x + offset;
    const float* dyr = dy + offset;
    float* dxr = dx + offset;

    float xc[SLOTS > 0 ? SLOTS : 1][VEC], dyc[SLOTS > 0 ? SLOTS : 1][VEC];
    float sum_gx = 0.0f;
    auto accumulate = [&](int c, const float (&xv)[VEC], const float (&dv)[VEC]) {
        float w[VEC];
        load_vec<VEC>(w, weight + c);
        for (int j = 0; j < VEC; ++j) sum_gx += dv[j] * w[j] * xv[j] * s;
    };
    if constexpr (SLOTS > 0) {
#pragma unroll
        for (int i = 0; i < SLOTS; ++i) {
            const int c = VEC * lane + kStride * i;
            if (c >= channels) continue;
            load_vec<VEC>(xc[i], xr + c);
            load_vec<VEC>(dyc[i], dyr + c);
            accumulate(c, xc[i], dyc[i]);
        }
    } else {
        for (int c = VEC * lane; c < channels; c += kStride) {
            float xv[VEC], dv[VEC];
            load_vec<VEC>(xv, xr + c);
            load_vec<VEC>(dv, dyr + c);
            accumulate(c, xv, dv);
        }
    }
    const float mean_gx = warp_reduce_sum(sum_gx) / static_cast<float>(channels);

    auto write = [&](int c, const float (&xv)[VEC], const float (&dv)[VEC]) {
        float w[VEC], out[VEC];
        load_vec<VEC>(w, weight + c);
        load_vec<VEC>(out, dxr + c);
        for (int j = 0; j < VEC; ++j) out[j] += s * (dv[j] * w[j] - xv[j] * s * mean_gx);
        store_vec<VEC>(dxr + c, out);
    };
    if constexpr (SLOTS > 0) {
#pragma unroll
        for (int i = 0; i < SLOTS; ++i) {
            const int c = VEC * lane + kStride * i;
            if (c < channels) write(c, xc[i], dyc[i]);
        }
    } else {
        for (int c = VEC * lane; c < channels; c += kStride) {
            float xv[VEC], dv[VEC];
            load_vec<VEC>(xv, xr + c);
            load_vec<VEC>(dv, dyr + c);
            write(c, xv, dv);
        }
    }
}

}  // namespace rmsnorm_detail

// rmsnorm_forward — y = x·rstd·weight over the last axis, rstd = 1/sqrt(mean(x²) + epsilon); saves rstd for the backward.
//   y, x: [N, C] (y may alias x); weight: [C]; rstd: [N] out, or null (inference: nothing saved).
//   Grid: ceil(N / 8) blocks; block: 256 threads = 8 warps, one warp per row. The row stays in registers for
//   C ≤ 2048 (float4 path: C % 4 == 0 and y, x, weight 16-byte aligned) or C ≤ 1024 (scalar path).
extern "C" __global__ void __launch_bounds__(256) rmsnorm_forward(float* y, float* __restrict__ rstd, const float* x, const float* __restrict__ weight, int rows, int channels, float epsilon) {
    using namespace rmsnorm_detail;
    const int row = static_cast<int>(blockIdx.x * (blockDim.x / SP_WARP_SIZE) + warp_id());
    if (row >= rows) return;  // whole warps exit together: the row is warp-uniform
    const bool vec = (channels & 3) == 0 && aligned16(y) && aligned16(x) && aligned16(weight);
    if (vec) {
        if (channels <= 4 * SP_WARP_SIZE * 8) forward_row<4, 8>(y, rstd, x, weight, row, channels, epsilon);
        else if (channels <= 4 * SP_WARP_SIZE * 16) forward_row<4, 16>(y, rstd, x, weight, row, channels, epsilon);
        else forward_row<4, 0>(y, rstd, x, weight, row, channels, epsilon);
    } else {
        if (channels <= SP_WARP_SIZE * 32) forward_row<1, 32>(y, rstd, x, weight, row, channels, epsilon);
        else forward_row<1, 0>(y, rstd, x, weight, row, channels, epsilon);
    }
}

// rmsnorm_backward — input gradient only, ADDED into dx (the residual stream's gradient: the residual add is fused).
//   dx, dy, x: [N, C] (dx must not alias dy or x); weight: [C]; rstd: [N] from rmsnorm_forward.
//   dx += rstd·(g − x̂·mean(g·x̂)), g = dy·weight, x̂ = x·rstd.
//   Grid: ceil(N / 8) blocks; block: 256 threads = 8 warps, one warp per row. x and dy stay in registers for
//   C ≤ 1024 (float4 path when C % 4 == 0 and dx, dy, x, weight are 16-byte aligned; scalar otherwise).
extern "C" __global__ void __launch_bounds__(256) rmsnorm_backward(float* __restrict__ dx, const float* __restrict__ dy, const float* __restrict__ x, const float* __restrict__ weight, const float* __restrict__ rstd, int rows, int channels) {
    using namespace rmsnorm_detail;
    const int row = static_cast<int>(blockIdx.x * (blockDim.x / SP_WARP_SIZE) + warp_id());
    if (row >= rows) return;
    const float s = ldg(rstd + row);
    const bool vec = (channels & 3) == 0 && aligned16(dx) && aligned16(dy) && aligned16(x) && aligned16(weight);
    if (vec) {
        if (channels <= 4 * SP_WARP_SIZE * 8) backward_row<4, 8>(dx, dy, x, weight, s, row, channels);
        else backward_row<4, 0>(dx, dy, x, weight, s, row, channels);
    } else {
        if (channels <= SP_WARP_SIZE * 32) backward_row<1, 32>(dx, dy, x, weight, s, row, channels);
        else backward_row<1, 0>(dx, dy, x, weight, s, row, channels);
    }
}

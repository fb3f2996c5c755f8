// kernel_helpers.cuh — small device helpers that several kernel files share, written once in common.cuh's vocabulary
// (no CUDA intrinsic of their own: those live in common.cuh only). Include it after common.cuh.
//
//   aligned16(p)                    p is 16-byte aligned (float4 loads and stores are legal there)
//   grid_first(), grid_stride()     a 1-D grid-stride loop: for (i = grid_first(); i < n; i += grid_stride())
//   grid_warp()                     this warp's index in a 1-D grid (one warp per row: the row)
//   load_vec<N>(v, p), store_vec<N>  N = 1, 2 or 4 consecutive floats ↔ float v[N] (one aligned float2 / float4 access);
//                                   load_vec / load_value from bf16* widen exactly, store_vec / store_value into bf16*
//                                   round each value to nearest even
//   gelu_tanh(x), gelu_tanh_derivative(x)
//                                   Hugging Face's gelu_new (GELU, tanh approximation) and its derivative, exactly as
//                                   src/SoftPrompt/Cpu/GeluOps.cs computes them in fp32
#pragma once
#include "common.cuh"

__device__ __forceinline__ bool aligned16(const void* p) { return (reinterpret_cast<unsigned long long>(p) & 15ull) == 0; }

__device__ __forceinline__ int grid_first() { return static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x); }
__device__ __forceinline__ int grid_stride() { return static_cast<int>(gridDim.x * blockDim.x); }
__device__ __forceinline__ int grid_warp() { return static_cast<int>(blockIdx.x * (blockDim.x / SP_WARP_SIZE) + warp_id()); }

// N consecutive floats at p → v: N = 4 is one float4 access, N = 2 one float2 (p aligned to 16 / 8 bytes), N = 1 a float.
template <int N>
__device__ __forceinline__ void load_vec(float (&v)[N], const float* p) {
    static_assert(N == 1 || N == 2 || N == 4, "vector width");
    if constexpr (N == 4) {
        const float4 x = load_float4(p);
        v[0] = x.x; v[1] = x.y; v[2] = x.z; v[3] = x.w;
    } else if constexpr (N == 2) {
        const float2 x = load_float2(p);
        v[0] = x.x; v[1] = x.y;
    } else {
        v[0] = *p;
    }
}
template <int N>
__device__ __forceinline__ void store_vec(float* p, const float (&v)[N]) {
    static_assert(N == 1 || N == 2 || N == 4, "vector width");
    if constexpr (N == 4) store_float4(p, make_float4(v[0], v[1], v[2], v[3]));
    else if constexpr (N == 2) store_float2(p, make_float2(v[0], v[1]));
    else *p = v[0];
}

// The same N floats stored as bf16 (each rounded to nearest even; one 8-byte / 4-byte store for N = 4 / 2, so p must be
// 2·N-byte aligned): how a kernel writes an activation that only a bf16 GEMM reads.
template <int N>
__device__ __forceinline__ void store_vec(bf16* p, const float (&v)[N]) {
    static_assert(N == 1 || N == 2 || N == 4, "vector width");
    if constexpr (N == 4) *reinterpret_cast<uint2*>(p) = make_uint2(pack_bf16x2(v[0], v[1]), pack_bf16x2(v[2], v[3]));
    else if constexpr (N == 2) *reinterpret_cast<unsigned*>(p) = pack_bf16x2(v[0], v[1]);
    else *p = to_bf16(v[0]);
}
// N consecutive bf16 at p, widened exactly to float (one 8-byte / 4-byte load for N = 4 / 2: p 2·N-byte aligned).
template <int N>
__device__ __forceinline__ void load_vec(float (&v)[N], const bf16* p) {
    static_assert(N == 1 || N == 2 || N == 4, "vector width");
    if constexpr (N == 4) {
        const uint2 x = *reinterpret_cast<const uint2*>(p);
        v[0] = to_float(bf16_from_bits(static_cast<unsigned short>(x.x & 0xffffu)));
        v[1] = to_float(bf16_from_bits(static_cast<unsigned short>(x.x >> 16)));
        v[2] = to_float(bf16_from_bits(static_cast<unsigned short>(x.y & 0xffffu)));
        v[3] = to_float(bf16_from_bits(static_cast<unsigned short>(x.y >> 16)));
    } else if constexpr (N == 2) {
        const unsigned x = *reinterpret_cast<const unsigned*>(p);
        v[0] = to_float(bf16_from_bits(static_cast<unsigned short>(x & 0xffffu)));
        v[1] = to_float(bf16_from_bits(static_cast<unsigned short>(x >> 16)));
    } else {
        v[0] = to_float(*p);
    }
}
__device__ __forceinline__ float load_value(const float* p) { return *p; }
__device__ __forceinline__ float load_value(const bf16* p) { return to_float(*p); }

__device__ __forceinline__ void store_value(float* p, float v) { *p = v; }
__device__ __forceinline__ void store_value(bf16* p, float v) { *p = to_bf16(v); }

// gelu_new: 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))), with the CPU op's constants computed the same way in fp32.
__device__ __forceinline__ float gelu_tanh_scale() { return sqrtf(2.0f / 3.14159265358979f); }
constexpr float kGeluTanhCubic = 0.044715f;

__device__ __forceinline__ float gelu_tanh(float x) {
    const float k = gelu_tanh_scale();
    return 0.5f * x * (1.0f + tanhf(k * (x + kGeluTanhCubic * x * x * x)));
}

__device__ __forceinline__ float gelu_tanh_derivative(float x) {
    const float k = gelu_tanh_scale();
    const float th = tanhf(k * (x + kGeluTanhCubic * x * x * x));
    return 0.5f * (1.0f + th) + 0.5f * x * (1.0f - th * th) * k * (1.0f + 3.0f * kGeluTanhCubic * x * x);
}

// emu_device.h — the emulator side of common.cuh: what the CUDA vocabulary means when kernels are compiled by
// g++ into libsoftprompt_emu.so. Included only through common.cuh.
//
// Execution model (implemented in emu_runtime.cpp): each CUDA thread of a block is a user-mode fiber; all fibers
// of a block run on one OS thread and switch at every __syncthreads / warp operation, so a barrier really holds
// every thread of the block until all non-exited threads arrived, and a warp operation really exchanges values
// among the warp's non-exited lanes. Blocks run in parallel on a small thread pool, so atomics are real atomics.
#pragma once
#if defined(__CUDACC__) && !defined(SOFTPROMPT_EMULATOR)
#error "emu_device.h is the emulator's side of common.cuh; nvcc builds must not include it"
#endif

#include <atomic>
#include <bit>
#include <cassert>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <source_location>
#include <type_traits>

// ── qualifiers ──
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline __attribute__((always_inline))
#define __launch_bounds__(...)
#define __align__(n) alignas(n)
#define __constant__
// __restrict__ is a GNU C++ keyword already. Plain __shared__ has no per-block meaning in C++: use SHARED().
#define __shared__ SOFTPROMPT_EMULATOR_use_SHARED_or_dynamic_smem_instead_of___shared__

// ── CUDA vector types (same sizes and alignments as vector_types.h) ──
struct uint3 { unsigned x, y, z; };
struct dim3 {
    unsigned x = 1, y = 1, z = 1;
    constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
struct alignas(8) float2 { float x, y; };
struct alignas(16) float4 { float x, y, z, w; };
struct alignas(8) int2 { int x, y; };
struct alignas(16) int4 { int x, y, z, w; };
struct alignas(8) uint2 { unsigned x, y; };
struct alignas(16) uint4 { unsigned x, y, z, w; };
inline float2 make_float2(float x, float y) { return {x, y}; }
inline float4 make_float4(float x, float y, float z, float w) { return {x, y, z, w}; }
inline int2 make_int2(int x, int y) { return {x, y}; }
inline int4 make_int4(int x, int y, int z, int w) { return {x, y, z, w}; }
inline uint2 make_uint2(unsigned x, unsigned y) { return {x, y}; }
inline uint4 make_uint4(unsigned x, unsigned y, unsigned z, unsigned w) { return {x, y, z, w}; }
constexpr int warpSize = 32;

namespace emu {
// What kernel code can see of the current CUDA thread (the runtime's fiber derives from it).
struct Lane {
    uint3 thread_idx;
    uint3 block_idx;
    dim3 block_dim;
    dim3 grid_dim;
    void* dynamic_smem;
};
// __thread (not thread_local): no TLS wrapper calls; initial-exec: one %fs-relative load per access.
extern __thread Lane* t_lane __attribute__((tls_model("initial-exec")));

void block_barrier();
// Publishes this lane's 8 bytes, waits for every non-exited lane of the warp, and returns the warp's 32 slots;
// *participants gets the mask of lanes whose slot is valid. The slots stay valid until this lane's next warp op.
const uint64_t* warp_exchange(uint64_t mine, uint32_t* participants);
// Per-block storage for one SHARED() declaration site (first caller in the block allocates, others reuse).
void* shared_alloc(const void* site, size_t bytes, size_t align);
[[noreturn]] void trap(const char* what, const char* file, int line, const char* function);
void threadfence();
// This thread's cp.async queue (see cp_async_16 below): queue a 16-byte copy into the open group, close the group,
// and land every copy of all but the newest `pending` committed groups.
void cp_async_issue(void* dst, const unsigned char (&data)[16]);
void cp_async_commit();
void cp_async_wait(unsigned pending);
}  // namespace emu

// ── indices ──
#define threadIdx (static_cast<const uint3&>(::emu::t_lane->thread_idx))
#define blockIdx (static_cast<const uint3&>(::emu::t_lane->block_idx))
#define blockDim (static_cast<const dim3&>(::emu::t_lane->block_dim))
#define gridDim (static_cast<const dim3&>(::emu::t_lane->grid_dim))

// ── barriers and fences ──
inline void __syncthreads() { ::emu::block_barrier(); }
inline void __syncwarp() { uint32_t p; (void)::emu::warp_exchange(0, &p); }
inline void __threadfence() { ::emu::threadfence(); }
inline void __threadfence_block() { std::atomic_signal_fence(std::memory_order_seq_cst); }

// ── errors: assert() and __trap() end the launch with an error string instead of aborting the process ──
#undef assert
#define assert(e) ((e) ? (void)0 : ::emu::trap("assertion `" #e "` failed", __FILE__, __LINE__, __func__))
#define __trap() ::emu::trap("__trap()", __FILE__, __LINE__, __func__)

// ── shared memory ──
#define SP_EMU_SMEM_ALIGN(type) (alignof(type) < 16 ? size_t{16} : alignof(type))
#define SHARED(type, name, count)                                                                        \
    static char name##_emu_site_;                                                                        \
    type(&name)[count] = *static_cast<type(*)[count]>(                                                   \
        ::emu::shared_alloc(&name##_emu_site_, sizeof(type[count]), SP_EMU_SMEM_ALIGN(type)))
#define SHARED2D(type, name, rows, cols)                                                                 \
    static char name##_emu_site_;                                                                        \
    type(&name)[rows][cols] = *static_cast<type(*)[rows][cols]>(                                         \
        ::emu::shared_alloc(&name##_emu_site_, sizeof(type[rows][cols]), SP_EMU_SMEM_ALIGN(type)))
template <typename T>
inline T* dynamic_smem() { return static_cast<T*>(::emu::t_lane->dynamic_smem); }

// ── bit casts and integer intrinsics ──
inline int __float_as_int(float f) { return std::bit_cast<int>(f); }
inline unsigned __float_as_uint(float f) { return std::bit_cast<unsigned>(f); }
inline float __int_as_float(int i) { return std::bit_cast<float>(i); }
inline float __uint_as_float(unsigned u) { return std::bit_cast<float>(u); }
inline int __popc(unsigned x) { return std::popcount(x); }
inline int __popcll(unsigned long long x) { return std::popcount(x); }
inline int __clz(int x) { return std::countl_zero(static_cast<unsigned>(x)); }
inline int __ffs(int x) { return x == 0 ? 0 : std::countr_zero(static_cast<unsigned>(x)) + 1; }

// ── math: libm names come from <cmath>; CUDA's fast/rounded intrinsics map to the exact operation ──
inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }
inline float __expf(float x) { return std::exp(x); }
inline float __logf(float x) { return std::log(x); }
inline float __powf(float x, float y) { return std::pow(x, y); }
inline float __sinf(float x) { return std::sin(x); }
inline float __cosf(float x) { return std::cos(x); }
inline float __tanhf(float x) { return std::tanh(x); }
inline float __fdividef(float x, float y) { return x / y; }
inline float __frcp_rn(float x) { return 1.0f / x; }
inline float __fsqrt_rn(float x) { return std::sqrt(x); }
inline float __fmaf_rn(float x, float y, float z) { return std::fma(x, y, z); }
inline float __fmul_rn(float x, float y) { return x * y; }
inline float __fadd_rn(float x, float y) { return x + y; }
inline float __saturatef(float x) { return x != x ? 0.0f : x < 0.0f ? 0.0f : x > 1.0f ? 1.0f : x; }
// CUDA's device min/max overloads (including its mixed-signedness ones).
inline int min(int a, int b) { return a < b ? a : b; }
inline int max(int a, int b) { return a > b ? a : b; }
inline unsigned min(unsigned a, unsigned b) { return a < b ? a : b; }
inline unsigned max(unsigned a, unsigned b) { return a > b ? a : b; }
inline unsigned min(int a, unsigned b) { return min(static_cast<unsigned>(a), b); }
inline unsigned max(int a, unsigned b) { return max(static_cast<unsigned>(a), b); }
inline unsigned min(unsigned a, int b) { return min(a, static_cast<unsigned>(b)); }
inline unsigned max(unsigned a, int b) { return max(a, static_cast<unsigned>(b)); }
inline long long min(long long a, long long b) { return a < b ? a : b; }
inline long long max(long long a, long long b) { return a > b ? a : b; }
inline unsigned long long min(unsigned long long a, unsigned long long b) { return a < b ? a : b; }
inline unsigned long long max(unsigned long long a, unsigned long long b) { return a > b ? a : b; }
inline float min(float a, float b) { return std::fmin(a, b); }
inline float max(float a, float b) { return std::fmax(a, b); }
inline double min(double a, double b) { return std::fmin(a, b); }
inline double max(double a, double b) { return std::fmax(a, b); }

// ── warp operations (full-warp: every non-exited lane of the warp must reach the same operation) ──
namespace emu {
template <typename T>
inline T warp_read(T mine, int src_lane, bool keep_own) {
    static_assert(std::is_arithmetic_v<T> && sizeof(T) <= 8, "warp shuffles move one arithmetic value");
    uint64_t bits = 0;
    std::memcpy(&bits, &mine, sizeof(T));
    uint32_t participants;
    const uint64_t* slots = warp_exchange(bits, &participants);
    if (keep_own) return mine;
    // Reading a lane that exited (or does not exist) is undefined on the GPU: poison it (NaN / -1).
    uint64_t out = ((participants >> (src_lane & 31)) & 1u) ? slots[src_lane & 31] : ~uint64_t{0};
    T r;
    std::memcpy(&r, &out, sizeof(T));
    return r;
}
inline unsigned lane_of_current() {
    const Lane& l = *t_lane;
    return (l.thread_idx.x + l.block_dim.x * (l.thread_idx.y + l.block_dim.y * l.thread_idx.z)) & 31u;
}
}  // namespace emu

// Semantics of __shfl*_sync with width (a power of two ≤ 32) as in the CUDA programming guide.
template <typename T> inline T warp_shfl(T v, int src_lane, int width = 32) {
    const int lane = static_cast<int>(::emu::lane_of_current());
    return ::emu::warp_read(v, (lane & ~(width - 1)) + (src_lane & (width - 1)), false);
}
template <typename T> inline T warp_shfl_xor(T v, int lane_mask, int width = 32) {
    const int lane = static_cast<int>(::emu::lane_of_current());
    const int src = lane ^ lane_mask;
    return ::emu::warp_read(v, src, src >= ((lane & ~(width - 1)) + width));
}
template <typename T> inline T warp_shfl_down(T v, unsigned delta, int width = 32) {
    const int lane = static_cast<int>(::emu::lane_of_current());
    return ::emu::warp_read(v, lane + static_cast<int>(delta), (lane & (width - 1)) + static_cast<int>(delta) >= width);
}
template <typename T> inline T warp_shfl_up(T v, unsigned delta, int width = 32) {
    const int lane = static_cast<int>(::emu::lane_of_current());
    return ::emu::warp_read(v, lane - static_cast<int>(delta), (lane & (width - 1)) < static_cast<int>(delta));
}
inline unsigned warp_ballot(bool p) {
    uint32_t participants;
    const uint64_t* slots = ::emu::warp_exchange(p ? 1u : 0u, &participants);
    unsigned r = 0;
    for (int l = 0; l < 32; ++l)
        if (((participants >> l) & 1u) && slots[l]) r |= 1u << l;
    return r;
}
inline bool warp_any(bool p) { return warp_ballot(p) != 0; }
inline bool warp_all(bool p) {
    uint32_t participants;
    const uint64_t* slots = ::emu::warp_exchange(p ? 1u : 0u, &participants);
    for (int l = 0; l < 32; ++l)
        if (((participants >> l) & 1u) && !slots[l]) return false;
    return true;
}

// ── atomics: real atomics (blocks run on several OS threads) ──
template <typename T> inline std::atomic_ref<T> sp_emu_atomic(T* p) { return std::atomic_ref<T>(*p); }
inline int atomicAdd(int* p, int v) { return sp_emu_atomic(p).fetch_add(v); }
inline unsigned atomicAdd(unsigned* p, unsigned v) { return sp_emu_atomic(p).fetch_add(v); }
inline unsigned long long atomicAdd(unsigned long long* p, unsigned long long v) { return sp_emu_atomic(p).fetch_add(v); }
inline float atomicAdd(float* p, float v) { return sp_emu_atomic(p).fetch_add(v); }
inline double atomicAdd(double* p, double v) { return sp_emu_atomic(p).fetch_add(v); }
inline int atomicSub(int* p, int v) { return sp_emu_atomic(p).fetch_sub(v); }
inline unsigned atomicSub(unsigned* p, unsigned v) { return sp_emu_atomic(p).fetch_sub(v); }
template <typename T> inline T sp_emu_atomic_max(T* p, T v) {
    auto a = sp_emu_atomic(p);
    T old = a.load();
    while (old < v && !a.compare_exchange_weak(old, v)) {}
    return old;
}
template <typename T> inline T sp_emu_atomic_min(T* p, T v) {
    auto a = sp_emu_atomic(p);
    T old = a.load();
    while (v < old && !a.compare_exchange_weak(old, v)) {}
    return old;
}
inline int atomicMax(int* p, int v) { return sp_emu_atomic_max(p, v); }
inline unsigned atomicMax(unsigned* p, unsigned v) { return sp_emu_atomic_max(p, v); }
inline int atomicMin(int* p, int v) { return sp_emu_atomic_min(p, v); }
inline unsigned atomicMin(unsigned* p, unsigned v) { return sp_emu_atomic_min(p, v); }
template <typename T> inline T sp_emu_atomic_cas(T* p, T compare, T value) {
    sp_emu_atomic(p).compare_exchange_strong(compare, value);
    return compare;  // the old value either way
}
inline int atomicCAS(int* p, int c, int v) { return sp_emu_atomic_cas(p, c, v); }
inline unsigned atomicCAS(unsigned* p, unsigned c, unsigned v) { return sp_emu_atomic_cas(p, c, v); }
inline unsigned long long atomicCAS(unsigned long long* p, unsigned long long c, unsigned long long v) { return sp_emu_atomic_cas(p, c, v); }
inline int atomicExch(int* p, int v) { return sp_emu_atomic(p).exchange(v); }
inline unsigned atomicExch(unsigned* p, unsigned v) { return sp_emu_atomic(p).exchange(v); }
inline float atomicExch(float* p, float v) { return sp_emu_atomic(p).exchange(v); }

// ── loads ──
template <typename T> inline T ldg(const T* p) { return *p; }
inline void sp_emu_check_aligned(const void* p, size_t a, const char* what, const char* file, int line) {
    if (reinterpret_cast<uintptr_t>(p) % a != 0) ::emu::trap(what, file, line, "vector access");
}
#define load_float4(p) sp_emu_load<float4>((p), "misaligned load_float4 (needs 16-byte alignment)", __FILE__, __LINE__)
#define load_float2(p) sp_emu_load<float2>((p), "misaligned load_float2 (needs 8-byte alignment)", __FILE__, __LINE__)
#define store_float4(p, v) sp_emu_store<float4>((p), (v), "misaligned store_float4 (needs 16-byte alignment)", __FILE__, __LINE__)
#define store_float2(p, v) sp_emu_store<float2>((p), (v), "misaligned store_float2 (needs 8-byte alignment)", __FILE__, __LINE__)
template <typename V> inline V sp_emu_load(const float* p, const char* what, const char* file, int line) {
    sp_emu_check_aligned(p, alignof(V), what, file, line);
    V v;
    std::memcpy(&v, p, sizeof(V));
    return v;
}
template <typename V> inline void sp_emu_store(float* p, V v, const char* what, const char* file, int line) {
    sp_emu_check_aligned(p, alignof(V), what, file, line);
    std::memcpy(p, &v, sizeof(V));
}

// ── bf16 / fp16: bit-exact copies of the GPU's round-to-nearest-even conversions ──
struct alignas(2) bf16 { unsigned short bits; };
struct alignas(2) fp16 { unsigned short bits; };
inline bf16 to_bf16(float f) {
    const uint32_t u = std::bit_cast<uint32_t>(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return bf16{0x7fff};  // NaN → canonical NaN, as cvt.rn.bf16.f32
    const uint32_t rounded = u + 0x7fffu + ((u >> 16) & 1u);   // round to nearest, ties to even
    return bf16{static_cast<unsigned short>(rounded >> 16)};
}
inline fp16 to_fp16(float f) {
    const uint32_t u = std::bit_cast<uint32_t>(f);
    const uint32_t sign = (u >> 16) & 0x8000u;
    const uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u) return fp16{0x7fff};                       // NaN → canonical NaN, as cvt.rn.f16.f32
    if (a >= 0x477ff000u) return fp16{static_cast<unsigned short>(sign | 0x7c00u)};  // ≥ 65520 rounds to inf
    if (a >= 0x38800000u) {                                         // normal half (≥ 2^-14)
        const uint32_t r = a + 0x0fffu + ((a >> 13) & 1u) - (112u << 23);
        return fp16{static_cast<unsigned short>(sign | (r >> 13))};
    }
    if (a < 0x33000000u) return fp16{static_cast<unsigned short>(sign)};  // < 2^-25 rounds to ±0
    // subnormal half: value = m · 2^-24, m = a's significand shifted right with RNE
    const uint32_t exp = a >> 23;                                   // 102..112
    const uint32_t mant = (a & 0x7fffffu) | 0x800000u;
    const uint32_t shift = 126u - exp;                              // 14..24
    uint32_t m = mant >> shift;
    const uint32_t rem = mant & ((1u << shift) - 1u), half = 1u << (shift - 1u);
    if (rem > half || (rem == half && (m & 1u))) ++m;
    return fp16{static_cast<unsigned short>(sign | m)};
}
inline float to_float(fp16 h) {
    const uint32_t sign = (h.bits & 0x8000u) << 16, e = (h.bits >> 10) & 0x1fu, m = h.bits & 0x3ffu;
    if (e == 0x1f) return std::bit_cast<float>(m != 0 ? 0x7fffffffu : sign | 0x7f800000u);  // NaN → canonical, as cvt.f32.f16
    if (e != 0) return std::bit_cast<float>(sign | ((e + 112u) << 23) | (m << 13));
    const float v = static_cast<float>(m) * 5.9604644775390625e-8f;  // 2^-24
    return sign ? -v : v;
}


// ── tensor-core warp primitives: the PTX ISA's fragment layouts, lane by lane ──
// The hardware spreads each matrix over the 32 lanes' registers in a fixed pattern. Here every lane publishes its
// registers through warp exchanges, rebuilds the whole matrices with the ISA's tables, and keeps its own part of
// the result, so a kernel that puts an element in the wrong register computes a wrong answer on the CPU as well.
namespace emu {
[[noreturn]] inline void trap_at(const char* what, const std::source_location& at) {
    trap(what, at.file_name(), static_cast<int>(at.line()), at.function_name());
}
// every lane's `Words` 32-bit values, two per exchange; these instructions need all 32 lanes
template <int Words>
inline void warp_gather(const uint32_t (&mine)[Words], uint32_t (&all)[32][Words], const char* what, const std::source_location& at) {
    for (int w = 0; w < Words; w += 2) {
        const bool pair = w + 1 < Words;
        uint32_t participants;
        const uint64_t* slots = warp_exchange(mine[w] | (pair ? uint64_t{mine[w + 1]} << 32 : 0), &participants);
        if (participants != ~0u) trap_at(what, at);
        for (int l = 0; l < 32; ++l) {
            all[l][w] = static_cast<uint32_t>(slots[l]);
            if (pair) all[l][w + 1] = static_cast<uint32_t>(slots[l] >> 32);
        }
    }
}
inline uint16_t half_of(uint32_t reg, int h) { return static_cast<uint16_t>(reg >> (16 * h)); }
inline float bf16_bits_to_float(uint16_t bits) { return std::bit_cast<float>(static_cast<uint32_t>(bits) << 16); }
inline float fp16_bits_to_float(uint16_t bits) { return to_float(fp16{bits}); }

// mma.m16n8k16 with fp32 accumulation. groupID = lane / 4, threadID_in_group = lane % 4; element e of a fragment
// sits in register e / 2, the lower-numbered element in the low half. The products of 16-bit inputs are exact; they
// are summed with C in double and rounded once, where tensor cores truncate while aligning their addends: results
// may differ from a GPU in the last bits of fp32, never in which elements were multiplied.
template <float (*ToFloat)(uint16_t)>
inline void mma_m16n8k16(float d[4], const unsigned a[4], const unsigned b[2], const float c[4], const std::source_location& at) {
    const uint32_t mine[10] = {a[0], a[1], a[2], a[3], b[0], b[1], std::bit_cast<uint32_t>(c[0]),
                               std::bit_cast<uint32_t>(c[1]), std::bit_cast<uint32_t>(c[2]), std::bit_cast<uint32_t>(c[3])};
    uint32_t all[32][10];
    warp_gather(mine, all, "mma.sync needs all 32 lanes of the warp", at);
    float A[16][16], B[16][8], C[16][8];
    for (int lane = 0; lane < 32; ++lane) {
        const int group = lane >> 2, tig = lane % 4;
        for (int e = 0; e < 8; ++e)  // a0,a1,a4,a5: row groupID; a2,a3,a6,a7: +8; a4..a7: columns +8
            A[group + 8 * ((e >> 1) & 1)][2 * tig + (e & 1) + 8 * (e >> 2)] = ToFloat(half_of(all[lane][e >> 1], e & 1));
        for (int e = 0; e < 4; ++e)  // b0,b1: rows 2·threadID_in_group (+1); b2,b3: +8; column groupID
            B[2 * tig + (e & 1) + 8 * (e >> 1)][group] = ToFloat(half_of(all[lane][4 + (e >> 1)], e & 1));
        for (int e = 0; e < 4; ++e)  // c0,c1: row groupID; c2,c3: +8; columns 2·threadID_in_group (+1)
            C[group + 8 * (e >> 1)][2 * tig + (e & 1)] = std::bit_cast<float>(all[lane][6 + e]);
    }
    const int lane = static_cast<int>(lane_of_current()), group = lane >> 2, tig = lane % 4;
    for (int e = 0; e < 4; ++e) {
        const int row = group + 8 * (e >> 1), col = 2 * tig + (e & 1);
        double sum = C[row][col];
        for (int k = 0; k < 16; ++k) sum += static_cast<double>(A[row][k]) * B[k][col];
        d[e] = static_cast<float>(sum);
    }
}

// ldmatrix.m8n8.x{Matrices}[.trans].b16. Each addressing lane reads its own 16-byte row *before* the exchange, so
// every read of the warp happens before any lane moves on (as for the single hardware instruction), and a row
// another lane stored without a __syncwarp / __syncthreads in between reads stale, as the hardware may.
template <int Matrices, bool Trans>
inline void ldmatrix(unsigned r[], const void* row_address, const std::source_location& at) {
    uint32_t row[4] = {0, 0, 0, 0};
    if (lane_of_current() < 8u * Matrices) {
        if (reinterpret_cast<uintptr_t>(row_address) % 16 != 0) trap_at("misaligned ldmatrix row (needs 16-byte alignment)", at);
        std::memcpy(row, row_address, 16);
    }
    uint32_t rows[32][4];
    warp_gather(row, rows, "ldmatrix needs all 32 lanes of the warp", at);
    const unsigned i = lane_of_current();
    for (int j = 0; j < Matrices; ++j) {
        if (!Trans) {
            r[j] = rows[8 * j + i / 4][i % 4];  // row i/4, columns 2(i%4), 2(i%4)+1: word i%4 of that row
        } else {  // column i/4 of rows 2(i%4) and 2(i%4)+1
            const uint32_t* upper = rows[8 * j + 2 * (i % 4)];
            const uint32_t* lower = rows[8 * j + 2 * (i % 4) + 1];
            r[j] = static_cast<uint32_t>(half_of(upper[i / 8], (i / 4) % 2)) | static_cast<uint32_t>(half_of(lower[i / 8], (i / 4) % 2)) << 16;
        }
    }
}
}  // namespace emu

inline void mma_m16n8k16_bf16(float d[4], const unsigned a[4], const unsigned b[2], const float c[4],
                              std::source_location at = std::source_location::current()) {
    ::emu::mma_m16n8k16<::emu::bf16_bits_to_float>(d, a, b, c, at);
}
inline void mma_m16n8k16_fp16(float d[4], const unsigned a[4], const unsigned b[2], const float c[4],
                              std::source_location at = std::source_location::current()) {
    ::emu::mma_m16n8k16<::emu::fp16_bits_to_float>(d, a, b, c, at);
}
inline void ldmatrix_x4(unsigned r[4], const void* smem_row, std::source_location at = std::source_location::current()) {
    ::emu::ldmatrix<4, false>(r, smem_row, at);
}
inline void ldmatrix_x4_trans(unsigned r[4], const void* smem_row, std::source_location at = std::source_location::current()) {
    ::emu::ldmatrix<4, true>(r, smem_row, at);
}
inline void ldmatrix_x2(unsigned r[2], const void* smem_row, std::source_location at = std::source_location::current()) {
    ::emu::ldmatrix<2, false>(r, smem_row, at);
}
inline void ldmatrix_x2_trans(unsigned r[2], const void* smem_row, std::source_location at = std::source_location::current()) {
    ::emu::ldmatrix<2, true>(r, smem_row, at);
}

// cp.async is emulated asynchronously on purpose: the source is read at issue (so AddressSanitizer names that line),
// but the shared-memory destination is written only by the cp_async_wait that covers the copy's group. A kernel that
// reads the tile before its wait sees the old contents (0xFF on a fresh block) and fails, where copying at issue
// would hide the missing wait. Copies still queued when a thread exits are dropped, as the hardware's are unobserved.
inline void cp_async_16(void* smem, const void* gmem, std::source_location at = std::source_location::current()) {
    if (reinterpret_cast<uintptr_t>(smem) % 16 != 0 || reinterpret_cast<uintptr_t>(gmem) % 16 != 0)
        ::emu::trap_at("misaligned cp_async_16 (both addresses need 16-byte alignment)", at);
    unsigned char data[16];
    std::memcpy(data, gmem, 16);
    const volatile uint64_t* destination = static_cast<const volatile uint64_t*>(smem);  // volatile: the reads stay,
    (void)destination[0];                                                                // so AddressSanitizer checks
    (void)destination[1];                                                                // the destination at the issue
    ::emu::cp_async_issue(smem, data);
}
inline void cp_async_commit() { ::emu::cp_async_commit(); }
template <int N> inline void cp_async_wait() {
    static_assert(N >= 0, "cp.async.wait_group takes a non-negative count");
    ::emu::cp_async_wait(N);
}
inline void cp_async_wait_all() {
    ::emu::cp_async_commit();
    ::emu::cp_async_wait(0);
}

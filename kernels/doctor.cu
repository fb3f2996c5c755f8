// doctor.cu — the kernel `softprompt doctor` launches to check a device end to end (Cuda/DeviceSelfTest.cs).
// Launcher: src/SoftPrompt/Cuda/Kernels/Doctor.cs. The kernels that exercise the rest of common.cuh are test-only:
// tests/kernels/selftest.cu.
#include "common.cuh"

// selftest_block_sum — block reduction with warp shuffles + shared memory (block_reduce_sum).
//   x: [n] fp32, block_sums: [gridDim.x] fp32.
//   Grid: ceil(n / blockDim.x) blocks; block: 256 threads (any multiple of 32 ≤ 1024); one element per thread.
//   block_sums[b] = Σ x[b·blockDim.x + t] over the block's elements (missing tail elements count as 0).
extern "C" __global__ void __launch_bounds__(1024) selftest_block_sum(const float* __restrict__ x, float* __restrict__ block_sums, int n) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    const float v = i < n ? x[i] : 0.0f;
    const float total = block_reduce_sum(v);
    if (threadIdx.x == 0) block_sums[blockIdx.x] = total;
}

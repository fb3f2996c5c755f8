// optimizer.cu — the prompt optimizers on the device: global gradient norm with clipping (no host sync), SGD,
// AdamW and Adafactor. Mirrors src/SoftPrompt/Cpu/OptimizerOps.cs (OptimizerOps, AdafactorOps) one-to-one.
// The gradient scale (loss scale × clip factor) lives in device memory, written by gradient_norm_finish and read by
// every step kernel, so clipping never waits for the host.
// Launchers: src/SoftPrompt/Cuda/Kernels/Optimizer.cs. Tests: tests/SoftPrompt.Tests/Kernels/OptimizerKernelTests.cs.
#include "common.cuh"
#include "kernel_helpers.cuh"

namespace optimizer_detail {

// torch.optim.AdamW's element update (OptimizerOps.AdamWStep), g already scaled.
__device__ __forceinline__ void adamw(float& p, float& m, float& v, float g, float beta1, float beta2, float epsilon,
                                      float step_size, float bias2_root, float decay) {
    m = beta1 * m + (1.0f - beta1) * g;
    v = beta2 * v + (1.0f - beta2) * g * g;
    p = p * decay - step_size * m / (sqrtf(v) / bias2_root + epsilon);
}

}  // namespace optimizer_detail

// gradient_norm_partials — stage 1 of the global L2 norm: partials[blockIdx.x] = Σ g² over the block's elements.
//   partials: [gridDim.x] out; gradient: [n].
//   Grid: a function of n only (the launcher's, ≤ 256 blocks), so the partition and hence the bits are the same on
//   every run; block: 256. Grid-stride over float4s when gradient is 16-byte aligned (then the n % 4 tail), floats
//   otherwise; each thread adds in order, then a fixed block tree.
extern "C" __global__ void __launch_bounds__(256) gradient_norm_partials(float* __restrict__ partials, const float* __restrict__ gradient, int n) {
    using namespace optimizer_detail;
    const int stride = grid_stride(), first = grid_first();
    float sum = 0.0f;
    int done = 0;
    if (aligned16(gradient)) {
        const int n4 = n / 4;
        for (int q = first; q < n4; q += stride) {
            const float4 g = load_float4(gradient + 4 * q);
            sum += (g.x * g.x + g.y * g.y) + (g.z * g.z + g.w * g.w);
        }
        done = 4 * n4;
    }
    for (int i = done + first; i < n; i += stride) sum += gradient[i] * gradient[i];
    sum = block_reduce_sum(sum);
    if (threadIdx.x == 0) partials[blockIdx.x] = sum;
}

// gradient_norm_finish — stage 2: the norm and the step's gradient scale, on the device.
//   result: [2] out = { |gradient_scale|·‖g‖₂, gradient_scale·(clip_norm > 0 && norm > clip_norm ? clip_norm / norm : 1) };
//   partials: [count] from gradient_norm_partials (result and partials may be parts of one scratch buffer).
//   Grid: 1 block; block: 256. Fixed-order sum of the partials (deterministic).
extern "C" __global__ void __launch_bounds__(256) gradient_norm_finish(float* result, const float* partials, int count, float gradient_scale, float clip_norm) {
    float sum = 0.0f;
    for (int i = static_cast<int>(threadIdx.x); i < count; i += static_cast<int>(blockDim.x)) sum += partials[i];
    sum = block_reduce_sum(sum);
    if (threadIdx.x == 0) {
        const float norm = sqrtf(sum) * fabsf(gradient_scale);
        result[0] = norm;
        result[1] = clip_norm > 0.0f && norm > clip_norm ? gradient_scale * (clip_norm / norm) : gradient_scale;
    }
}

// sgd_step — torch.optim.SGD without momentum: p −= lr·(scale·g + weight_decay·p).
//   parameters, gradient: [n]; scale: [1] (device; gradient_norm_finish's result[1]).
//   Grid: any (the launcher caps it; grid-stride, float4 when both buffers are 16-byte aligned); block: 256.
extern "C" __global__ void __launch_bounds__(256) sgd_step(float* __restrict__ parameters, const float* __restrict__ gradient, const float* __restrict__ scale, float learning_rate, float weight_decay, int n) {
    using namespace optimizer_detail;
    const float sc = ldg(scale);
    const int stride = grid_stride(), first = grid_first();
    auto update = [&](float p, float g) { return p - learning_rate * (sc * g + weight_decay * p); };
    int done = 0;
    if (aligned16(parameters) && aligned16(gradient)) {
        const int n4 = n / 4;
        for (int q = first; q < n4; q += stride) {
            const float4 p = load_float4(parameters + 4 * q), g = load_float4(gradient + 4 * q);
            store_float4(parameters + 4 * q, make_float4(update(p.x, g.x), update(p.y, g.y), update(p.z, g.z), update(p.w, g.w)));
        }
        done = 4 * n4;
    }
    for (int i = done + first; i < n; i += stride) parameters[i] = update(parameters[i], gradient[i]);
}

// adamw_step — torch.optim.AdamW at step t (OptimizerOps.AdamWStep), g = scale[0]·gradient:
//   m = β1·m + (1−β1)·g; v = β2·v + (1−β2)·g²; p = p·decay − step_size·m / (√v / bias2_root + ε), with the host's
//   fp32 constants decay = 1 − lr·wd, step_size = lr / (1 − β1^t), bias2_root = √(1 − β2^t) (as the CPU op computes them).
//   parameters, gradient, first_moment, second_moment: [n]; scale: [1] (device).
//   Grid: any (the launcher caps it; grid-stride, float4 when all four buffers are 16-byte aligned); block: 256.
extern "C" __global__ void __launch_bounds__(256) adamw_step(float* __restrict__ parameters, const float* __restrict__ gradient, float* __restrict__ first_moment, float* __restrict__ second_moment, const float* __restrict__ scale, float beta1, float beta2, float epsilon, float step_size, float bias2_root, float decay, int n) {
    using namespace optimizer_detail;
    const float sc = ldg(scale);
    const int stride = grid_stride(), first = grid_first();
    int done = 0;
    if (aligned16(parameters) && aligned16(gradient) && aligned16(first_moment) && aligned16(second_moment)) {
        const int n4 = n / 4;
        for (int q = first; q < n4; q += stride) {
            float4 p = load_float4(parameters + 4 * q), m = load_float4(first_moment + 4 * q), v = load_float4(second_moment + 4 * q);
            const float4 g = load_float4(gradient + 4 * q);
            adamw(p.x, m.x, v.x, sc * g.x, beta1, beta2, epsilon, step_size, bias2_root, decay);
            adamw(p.y, m.y, v.y, sc * g.y, beta1, beta2, epsilon, step_size, bias2_root, decay);
            adamw(p.z, m.z, v.z, sc * g.z, beta1, beta2, epsilon, step_size, bias2_root, decay);
            adamw(p.w, m.w, v.w, sc * g.w, beta1, beta2, epsilon, step_size, bias2_root, decay);
            store_float4(parameters + 4 * q, p);
            store_float4(first_moment + 4 * q, m);
            store_float4(second_moment + 4 * q, v);
        }
        done = 4 * n4;
    }
    for (int i = done + first; i < n; i += stride) {
        float p = parameters[i], m = first_moment[i], v = second_moment[i];
        adamw(p, m, v, sc * gradient[i], beta1, beta2, epsilon, step_size, bias2_root, decay);
        parameters[i] = p;
        first_moment[i] = m;
        second_moment[i] = v;
    }
}

// adafactor_step — Adafactor (AdafactorOps.Step) on K independent [rows, cols] matrices, one block each.
//   parameters, gradient: [K, rows, cols]; row_state: [K, rows]; col_state: [K, cols]; scale: [1] (device).
//   beta2 = 1 − t^decay_rate and decay = 1 − lr·wd come from the host (fp32, as the CPU op computes them).
//   With g = scale·gradient: R = β2·R + (1−β2)·mean_c(g² + ε); C = β2·C + (1−β2)·mean_r(g² + ε);
//   u = g·rsqrt(R / mean(R)) / √C; u /= max(1, RMS(u) / clip_threshold); p = p·decay − lr·u.
//   Grid: K blocks; block: 512 threads (16 warps). Row sums: one warp per row; column sums: one thread per column
//   walking the rows in order (the CPU op's order); then two block reductions (mean R, Σu²) and the update, the
//   gradient read row by row with the threads across the columns (coalesced).
//   Dynamic shared memory: cols floats (√C of the new column state, reused by the two passes over the matrix).
extern "C" __global__ void __launch_bounds__(512) adafactor_step(float* __restrict__ parameters, const float* __restrict__ gradient, float* __restrict__ row_state, float* __restrict__ col_state, const float* __restrict__ scale, int rows, int cols, float beta2, float learning_rate, float clip_threshold, float epsilon, float decay) {
    const int k = static_cast<int>(blockIdx.x);
    const long long size = static_cast<long long>(rows) * cols;
    float* p = parameters + k * size;
    const float* g = gradient + k * size;
    float* row_sq = row_state + static_cast<long long>(k) * rows;
    float* col_sq = col_state + static_cast<long long>(k) * cols;
    float* col_root = dynamic_smem<float>();
    const float sc = ldg(scale);
    const float one_minus = 1.0f - beta2;
    const int t = static_cast<int>(thread_rank()), threads = static_cast<int>(block_size());
    const int lane = static_cast<int>(lane_id()), warp = static_cast<int>(warp_id()), warps = threads / SP_WARP_SIZE;

    // Factored second moments.
    for (int r = warp; r < rows; r += warps) {
        float sum = 0.0f;
        for (int c = lane; c < cols; c += SP_WARP_SIZE) {
            const float v = sc * g[static_cast<long long>(r) * cols + c];
            sum += v * v + epsilon;
        }
        sum = warp_reduce_sum(sum);
        if (lane == 0) row_sq[r] = beta2 * row_sq[r] + one_minus * sum / static_cast<float>(cols);
    }
    for (int c = t; c < cols; c += threads) {
        float sum = 0.0f;
        for (int r = 0; r < rows; ++r) {
            const float v = sc * g[static_cast<long long>(r) * cols + c];
            sum += v * v + epsilon;
        }
        const float updated = beta2 * col_sq[c] + one_minus * sum / static_cast<float>(rows);
        col_sq[c] = updated;
        col_root[c] = sqrtf(updated);
    }
    __syncthreads();  // row_sq (global, other warps) and col_root (shared) are complete

    float part = 0.0f;
    for (int r = t; r < rows; r += threads) part += row_sq[r];
    const float row_mean = block_reduce_sum(part) / static_cast<float>(rows);

    // RMS of the unclipped update.
    part = 0.0f;
    for (int r = 0; r < rows; ++r) {
        const float row_factor = 1.0f / sqrtf(row_sq[r] / row_mean);
        for (int c = t; c < cols; c += threads) {
            const float u = sc * g[static_cast<long long>(r) * cols + c] * row_factor / col_root[c];
            part += u * u;
        }
    }
    const float rms = sqrtf(block_reduce_sum(part) / static_cast<float>(rows * cols));
    const float divisor = fmaxf(1.0f, rms / clip_threshold);

    for (int r = 0; r < rows; ++r) {
        const float row_factor = 1.0f / sqrtf(row_sq[r] / row_mean);
        for (int c = t; c < cols; c += threads) {
            const long long i = static_cast<long long>(r) * cols + c;
            const float u = sc * g[i] * row_factor / col_root[c] / divisor;
            p[i] = p[i] * decay - learning_rate * u;
        }
    }
}

// count_nonfinite — *count += the number of NaN/±Inf among values[0..n): the divergence check after each optimizer
// step, kept on the device so a step never waits for the host; the count is read with the next loss.
//   count: [1] int (accumulates across calls until the host clears it); values: [n].
//   Grid: any (grid-stride); block: 256.
extern "C" __global__ void __launch_bounds__(256) count_nonfinite(int* __restrict__ count, const float* __restrict__ values, int n) {
    int bad = 0;
    for (int i = grid_first(); i < n; i += grid_stride()) bad += (__float_as_uint(values[i]) & 0x7f800000u) == 0x7f800000u;
    if (bad > 0) atomicAdd(count, bad);
}

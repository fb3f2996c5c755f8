// gpu_crosscheck — runs the self-test kernels on a real GPU (the PTX, through the CUDA driver API loaded with dlopen,
// no toolkit needed) and in the emulator (linked in) with identical inputs, and compares every output buffer.
// It checks that the PTX JIT-compiles and runs on the machine's GPU, and that the emulator's semantics (shuffles with
// widths, votes, atomics, barriers, dynamic shared memory, bf16/fp16 rounding incl. NaN) match the hardware's.
// Build and run (after kernels/build-kernels.sh):
//   g++ -std=c++20 -O2 -pthread -DSOFTPROMPT_EMULATOR -I kernels kernels/emu/tools/gpu_crosscheck.cpp \
//       kernels/emu/emu_runtime.cpp kernels/build/gen/emu_registry.cpp -static-libstdc++ -static-libgcc -ldl \
//       -o kernels/build/gpu_crosscheck
//   kernels/build/gpu_crosscheck kernels/build/ptx/softprompt.ptx
// Exit status 0 when every kernel agrees. (Dev tool; the C# [Category("Gpu")] tests cover the same ground once
// CudaDevice is merged.)
#include <dlfcn.h>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

extern "C" int emu_find_kernel(const char*);
extern "C" int emu_launch(int, uint32_t, uint32_t, uint32_t, uint32_t, uint32_t, uint32_t, uint32_t, void**, int);
extern "C" const char* emu_last_error();

namespace {
using CUresult = int;
using CUdevice = int;
using CUcontext = void*;
using CUmodule = void*;
using CUfunction = void*;
using CUdeviceptr = unsigned long long;

struct Driver {
    CUresult (*cuInit)(unsigned);
    CUresult (*cuDeviceGet)(CUdevice*, int);
    CUresult (*cuDeviceGetName)(char*, int, CUdevice);
    CUresult (*cuDeviceGetAttribute)(int*, int, CUdevice);
    CUresult (*cuDevicePrimaryCtxRetain)(CUcontext*, CUdevice);
    CUresult (*cuCtxSetCurrent)(CUcontext);
    CUresult (*cuModuleLoadDataEx)(CUmodule*, const void*, unsigned, int*, void**);
    CUresult (*cuModuleGetFunction)(CUfunction*, CUmodule, const char*);
    CUresult (*cuMemAlloc)(CUdeviceptr*, size_t);
    CUresult (*cuMemFree)(CUdeviceptr);
    CUresult (*cuMemcpyHtoD)(CUdeviceptr, const void*, size_t);
    CUresult (*cuMemcpyDtoH)(void*, CUdeviceptr, size_t);
    CUresult (*cuLaunchKernel)(CUfunction, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, void*, void**, void**);
    CUresult (*cuCtxSynchronize)();
    CUresult (*cuGetErrorString)(CUresult, const char**);
    CUresult (*cuFuncSetAttribute)(CUfunction, int, int);
};
Driver cu;
CUmodule module;

void check(CUresult r, const char* what) {
    if (r == 0) return;
    const char* s = "?";
    if (cu.cuGetErrorString) cu.cuGetErrorString(r, &s);
    std::fprintf(stderr, "CUDA error %d (%s) in %s\n", r, s, what);
    std::exit(2);
}

template <typename F> void load(void* lib, F& f, const char* name) {
    f = reinterpret_cast<F>(dlsym(lib, name));
    if (!f) { std::fprintf(stderr, "libcuda has no %s\n", name); std::exit(2); }
}

// A buffer with the same initial bytes on the GPU and in emulator memory.
struct Buffer {
    std::vector<uint8_t> init;
    CUdeviceptr gpu = 0;
    void* emu = nullptr;
    enum Compare { Exact, Float, Skip } compare = Exact;
    double tolerance = 0;  // relative, for Float
    const char* name = "";
};

struct Arg {
    int buffer = -1;       // index into the buffers, or -1 for a scalar
    uint64_t scalar = 0;   // scalar bytes
    int size = 0;
};

template <typename T> Buffer make(const char* name, const std::vector<T>& v, Buffer::Compare c = Buffer::Exact, double tol = 0) {
    Buffer b;
    b.name = name;
    b.init.resize(v.size() * sizeof(T));
    std::memcpy(b.init.data(), v.data(), b.init.size());
    b.compare = c;
    b.tolerance = tol;
    return b;
}
template <typename T> Buffer fill(const char* name, size_t n, Buffer::Compare c = Buffer::Exact, double tol = 0) {
    Buffer b;
    b.name = name;
    b.init.assign(n * sizeof(T), 0xff);
    b.compare = c;
    b.tolerance = tol;
    return b;
}
Arg buf(int i) { return Arg{i, 0, 8}; }
Arg i32(int v) { Arg a; a.size = 4; std::memcpy(&a.scalar, &v, 4); return a; }

int failures = 0;

void run(const char* kernel, unsigned grid, unsigned block, unsigned smem, std::vector<Buffer> buffers, std::vector<Arg> args) {
    // GPU
    CUfunction f;
    check(cu.cuModuleGetFunction(&f, module, kernel), kernel);
    for (auto& b : buffers) {
        check(cu.cuMemAlloc(&b.gpu, b.init.size() ? b.init.size() : 1), "cuMemAlloc");
        if (!b.init.empty()) check(cu.cuMemcpyHtoD(b.gpu, b.init.data(), b.init.size()), "cuMemcpyHtoD");
        b.emu = std::malloc(b.init.size() ? b.init.size() : 1);
        std::memcpy(b.emu, b.init.data(), b.init.size());
    }
    std::vector<uint64_t> gpuValues(args.size()), emuValues(args.size());
    std::vector<void*> gpuArgs(args.size()), emuArgs(args.size());
    for (size_t i = 0; i < args.size(); ++i) {
        gpuValues[i] = args[i].buffer >= 0 ? buffers[args[i].buffer].gpu : args[i].scalar;
        emuValues[i] = args[i].buffer >= 0 ? reinterpret_cast<uint64_t>(buffers[args[i].buffer].emu) : args[i].scalar;
        gpuArgs[i] = &gpuValues[i];
        emuArgs[i] = &emuValues[i];
    }
    check(cu.cuLaunchKernel(f, grid, 1, 1, block, 1, 1, smem, nullptr, gpuArgs.data(), nullptr), kernel);
    check(cu.cuCtxSynchronize(), kernel);
    // emulator
    auto t0 = std::chrono::steady_clock::now();
    if (emu_launch(emu_find_kernel(kernel), grid, 1, 1, block, 1, 1, smem, emuArgs.data(), static_cast<int>(args.size())) != 0) {
        std::printf("FAIL %-28s emulator: %s\n", kernel, emu_last_error());
        ++failures;
        return;
    }
    double emuMs = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    // compare
    bool ok = true;
    std::ostringstream detail;
    for (auto& b : buffers) {
        std::vector<uint8_t> g(b.init.size());
        if (!g.empty()) check(cu.cuMemcpyDtoH(g.data(), b.gpu, g.size()), "cuMemcpyDtoH");
        const auto* e = static_cast<const uint8_t*>(b.emu);
        if (b.compare == Buffer::Exact) {
            for (size_t i = 0; i < g.size(); ++i)
                if (g[i] != e[i]) {
                    detail << "  " << b.name << ": first differing byte " << i << " (gpu " << int(g[i]) << ", emulator " << int(e[i]) << ")";
                    ok = false;
                    break;
                }
        } else if (b.compare == Buffer::Float) {
            double worst = 0;
            size_t at = 0;
            for (size_t i = 0; i < g.size() / 4; ++i) {
                float x, y;
                std::memcpy(&x, &g[4 * i], 4);
                std::memcpy(&y, &e[4 * i], 4);
                if (std::isnan(x) || std::isnan(y)) {
                    if (std::isnan(x) != std::isnan(y)) { worst = INFINITY; at = i; }
                    continue;
                }
                if (x == y) continue;
                double rel = std::fabs(double(x) - double(y)) / std::max(1e-30, std::fabs(double(y)));
                if (rel > worst) { worst = rel; at = i; }
            }
            detail << "  " << b.name << ": max rel diff " << worst << " (element " << at << ")";
            if (worst > b.tolerance) ok = false;
        }
        cu.cuMemFree(b.gpu);
        std::free(b.emu);
    }
    std::printf("%s %-28s grid %5u block %4u smem %5u  emulator %.1f ms%s\n", ok ? "ok  " : "FAIL", kernel, grid, block, smem, emuMs, detail.str().c_str());
    if (!ok) ++failures;
}

std::vector<float> quarters(int n, unsigned seed, int range = 40) {
    std::mt19937 rng(seed);
    std::uniform_int_distribution<int> d(-range, range - 1);
    std::vector<float> x(n);
    for (auto& v : x) v = d(rng) / 4.0f;
    return x;
}
}  // namespace

int main(int argc, char** argv) {
    if (argc < 2) { std::fprintf(stderr, "usage: gpu_crosscheck softprompt.ptx\n"); return 2; }
    void* lib = dlopen("libcuda.so.1", RTLD_NOW);
    if (!lib) { std::fprintf(stderr, "no CUDA driver: %s\n", dlerror()); return 2; }
    load(lib, cu.cuInit, "cuInit");
    load(lib, cu.cuDeviceGet, "cuDeviceGet");
    load(lib, cu.cuDeviceGetName, "cuDeviceGetName");
    load(lib, cu.cuDeviceGetAttribute, "cuDeviceGetAttribute");
    load(lib, cu.cuDevicePrimaryCtxRetain, "cuDevicePrimaryCtxRetain");
    load(lib, cu.cuCtxSetCurrent, "cuCtxSetCurrent");
    load(lib, cu.cuModuleLoadDataEx, "cuModuleLoadDataEx");
    load(lib, cu.cuModuleGetFunction, "cuModuleGetFunction");
    load(lib, cu.cuMemAlloc, "cuMemAlloc_v2");
    load(lib, cu.cuMemFree, "cuMemFree_v2");
    load(lib, cu.cuMemcpyHtoD, "cuMemcpyHtoD_v2");
    load(lib, cu.cuMemcpyDtoH, "cuMemcpyDtoH_v2");
    load(lib, cu.cuLaunchKernel, "cuLaunchKernel");
    load(lib, cu.cuCtxSynchronize, "cuCtxSynchronize");
    load(lib, cu.cuGetErrorString, "cuGetErrorString");
    check(cu.cuInit(0), "cuInit");
    CUdevice dev;
    check(cu.cuDeviceGet(&dev, 0), "cuDeviceGet");
    char name[256];
    cu.cuDeviceGetName(name, sizeof name, dev);
    int major = 0, minor = 0;
    cu.cuDeviceGetAttribute(&major, 75, dev);
    cu.cuDeviceGetAttribute(&minor, 76, dev);
    CUcontext ctx;
    check(cu.cuDevicePrimaryCtxRetain(&ctx, dev), "cuDevicePrimaryCtxRetain");
    check(cu.cuCtxSetCurrent(ctx), "cuCtxSetCurrent");

    std::ifstream file(argv[1], std::ios::binary);
    std::string ptx((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
    auto t0 = std::chrono::steady_clock::now();
    check(cu.cuModuleLoadDataEx(&module, ptx.c_str(), 0, nullptr, nullptr), "cuModuleLoadDataEx (PTX JIT)");
    std::printf("%s (sm_%d%d): PTX %zu bytes JIT-compiled in %.0f ms\n", name, major, minor, ptx.size(),
                std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());

    {  // block reduction
        const int n = 70001, blocks = (n + 255) / 256;
        run("selftest_block_sum", blocks, 256, 0, {make("x", quarters(n, 1)), fill<float>("sums", blocks)}, {buf(0), buf(1), i32(n)});
    }
    {  // warp primitives
        const int n = 192;
        auto x = quarters(n, 7);
        x[40] = 150;
        x[100] = -150;
        run("selftest_warp_ops", n / 96, 96, 0, {make("x", x), fill<float>("out", 8 * n), fill<unsigned>("votes", 4 * n / 32)}, {buf(0), buf(1), buf(2)});
    }
    {  // histogram
        const int n = 10007, bins = 37;
        std::mt19937 rng(3);
        std::vector<int> v(n);
        for (auto& x : v) x = static_cast<int>(rng() % bins);
        run("selftest_histogram", 16, 128, 0, {make("values", v), make("counts", std::vector<int>(bins, 0))}, {buf(0), i32(n), buf(1), i32(bins)});
    }
    {  // atomics
        const int n = 4099;
        std::mt19937 rng(4);
        std::vector<int> v(n);
        for (auto& x : v) x = static_cast<int>(rng() % 1001) - 500;
        float zero = 0, ninf = -INFINITY;
        int zb, nb;
        std::memcpy(&zb, &zero, 4);
        std::memcpy(&nb, &ninf, 4);
        run("selftest_atomics", (n + 127) / 128, 128, 0, {make("values", v), make("result", std::vector<int>{INT32_MIN, zb, 0, nb})}, {buf(0), i32(n), buf(1)});
    }
    {  // barrier ordering
        const int n = 1000;
        run("selftest_reverse", (n + 255) / 256, 256, 0, {make("in", quarters(n, 5, 10000)), fill<float>("out", n)}, {buf(0), buf(1), i32(n)});
    }
    for (auto [n, threads] : {std::pair{2049, 1024}, std::pair{1000, 128}, std::pair{77, 7}}) {  // dynamic shared memory
        run("selftest_scan", (n + threads - 1) / threads, threads, 2 * threads * 4, {make("in", quarters(n, n)), fill<float>("out", n)}, {buf(0), buf(1), i32(n)});
    }
    {  // conversions and math
        std::vector<float> x = {0.f, -0.f, 1.f, -1.f, 1.00390625f, 1.01171875f, 1.0009765625f, 3.14159265f, -2.71828183f, 65504.f, 65519.f,
                                65520.f, 1e5f, -1e5f, 6.1035156e-05f, 5.9604645e-08f, 2.9802322e-08f, 3.0e-08f, 1e-10f, 1e-40f, 3.4028235e38f,
                                -3.4028235e38f, INFINITY, -INFINITY, NAN, -NAN, 3.3895314e38f, 3.3961776e38f, 0.1f, 0.2f, 0.3f, 1e-3f, 12345.678f};
        std::mt19937 rng(5);
        std::uniform_real_distribution<float> d(-20, 20);
        while (x.size() < 4096) x.push_back(d(rng));
        const int n = static_cast<int>(x.size());
        run("selftest_convert", (n / 4 + 63) / 64, 64, 0,
            {make("in", x), fill<uint16_t>("bf16", n), fill<uint16_t>("fp16", n), fill<float>("back", 2 * n),
             fill<float>("math", 6 * n, Buffer::Float, 1e-4)},
            {buf(0), buf(1), buf(2), buf(3), buf(4), i32(n)});
    }
    std::printf(failures == 0 ? "all kernels agree\n" : "%d kernel(s) differ\n", failures);
    return failures == 0 ? 0 : 1;
}

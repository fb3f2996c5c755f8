// emu_runtime.cpp — the CPU kernel emulator: runs a launch of grid × block CUDA threads with CUDA semantics.
//
// * Each CUDA thread of a block is a fiber with its own stack (mmap'ed once per worker and reused; a guard page
//   below each). All fibers of a block run on one OS thread; a fiber runs until it reaches __syncthreads, a warp
//   operation or its end, then switches back to the block's scheduler. Scheduling is deterministic
//   (round-robin sweeps in thread-rank order, or in reverse rank order: SOFTPROMPT_EMU_ORDER=reverse or
//   emu_set_reverse_order; a shared-memory hand-off that lacks its barrier reads stale data in one of the two orders).
// * __syncthreads releases the block when every non-exited thread arrived; a warp operation releases the warp
//   when every non-exited lane of the warp arrived (values are exchanged through double-buffered slots).
//   If nothing can run while threads are still waiting, the launch fails with a deadlock report.
// * Static shared memory (SHARED) is allocated per block and per declaration site, dynamic shared memory per
//   block, each with malloc and filled with 0xFF bytes (NaN / -1) so reads of unwritten shared memory show up;
//   under AddressSanitizer every shared array has its own redzones.
// * Blocks are taken from an atomic counter by the calling thread and a small pool of OS threads
//   (SOFTPROMPT_EMU_THREADS, default min(hardware threads, 8)), so atomics are exercised for real.
// * assert() / __trap() / a C++ exception / a deadlock end the launch with an error string (emu_last_error);
//   memory errors are AddressSanitizer's business (the ASan build of this library).
// * AddressSanitizer builds annotate every stack switch (__sanitizer_start/finish_switch_fiber).
#include "emu_device.h"
#include "emu_registry.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <cstdarg>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#if defined(__SANITIZE_ADDRESS__)
#define EMU_ASAN 1
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#else
#define EMU_ASAN 0
#endif

#if !defined(__x86_64__)
#include <ucontext.h>
#endif

#define EMU_API extern "C" __attribute__((visibility("default")))
#define EMU_NO_ASAN __attribute__((no_sanitize_address))

namespace emu {

__thread Lane* t_lane = nullptr;

namespace {

constexpr unsigned kMaxBlockThreads = 1024;
constexpr size_t kMaxDynamicSmem = 227 * 1024;  // sm_90's opt-in maximum

enum class State : uint8_t { Runnable, AtBlockBarrier, AtWarpOp, Done };

struct Block;
struct Worker;
struct Launch;

// A cp.async copy waiting for the cp_async_wait that lands it.
struct PendingCopy {
    void* dst;
    unsigned group;  // index of the commit group; == Fiber::cp_async_committed while still uncommitted
    unsigned char data[16];
};

struct Fiber : Lane {
#if defined(__x86_64__)
    void* sp = nullptr;
#else
    ucontext_t context;
#endif
    char* stack_lo = nullptr;
    size_t stack_size = 0;
    State state = State::Done;
    bool started = false;
    unsigned rank = 0, warp = 0, lane = 0, warp_ops = 0;
    Block* block = nullptr;
    Worker* worker = nullptr;
    void* fake_stack = nullptr;
    std::vector<PendingCopy> cp_async;  // in issue order
    unsigned cp_async_committed = 0;
};

struct Warp {
    unsigned live = 0, arrived = 0, pending_buffer = 0;
    uint32_t live_mask = 0;
    uint32_t participants[2] = {0, 0};
    uint64_t slots[2][32];
};

struct SharedSite {
    const void* site;
    void* memory;
};

struct Launch {
    const KernelEntry* kernel = nullptr;
    void** args = nullptr;
    dim3 grid, block;
    size_t smem = 0;
    uint64_t total = 0;
    std::atomic<uint64_t> next{0};
    std::atomic<bool> failed{false};
    bool reverse_order = false;
    std::mutex mutex;
    std::string error;

    void fail(const std::string& message) {
        std::lock_guard<std::mutex> lock(mutex);
        if (error.empty()) error = message;
        failed.store(true);
    }
};

struct Block {
    Launch* launch = nullptr;
    uint3 idx{0, 0, 0};
    unsigned threads = 0, live = 0, arrived = 0, done = 0;
    bool failed = false;
    std::vector<Warp> warps;
    std::vector<SharedSite> shared;
    void* dynamic_smem = nullptr;
};

struct Worker {
#if defined(__x86_64__)
    void* scheduler_sp = nullptr;
#else
    ucontext_t scheduler_context;
#endif
    const void* scheduler_stack_lo = nullptr;
    size_t scheduler_stack_size = 0;
    void* scheduler_fake_stack = nullptr;
    std::unique_ptr<Fiber[]> fibers{new Fiber[kMaxBlockThreads]};
    Block block;
};

size_t stack_bytes() {
    static const size_t bytes = [] {
        size_t kb = EMU_ASAN ? 512 : 256;
        if (const char* s = std::getenv("SOFTPROMPT_EMU_STACK_KB")) kb = std::max<size_t>(64, std::strtoul(s, nullptr, 10));
        return kb * 1024;
    }();
    return bytes;
}

std::string format(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
std::string format(const char* fmt, ...) {
    char buffer[1024];
    va_list ap;
    va_start(ap, fmt);
    std::vsnprintf(buffer, sizeof buffer, fmt, ap);
    va_end(ap);
    return buffer;
}

std::string where(const Fiber& f) {
    return format("kernel '%s' block (%u,%u,%u) thread (%u,%u,%u)", f.block->launch->kernel->name, f.block_idx.x,
                  f.block_idx.y, f.block_idx.z, f.thread_idx.x, f.thread_idx.y, f.thread_idx.z);
}

// ── context switching ──
}  // namespace
}  // namespace emu

extern "C" void emu_fiber_entry();

#if defined(__x86_64__)
// void emu_ctx_switch(void** save_sp, void* load_sp): saves callee-saved registers, MXCSR and the x87 control
// word on the current stack, stores the stack pointer in *save_sp, and resumes the context saved at load_sp.
extern "C" void emu_ctx_switch(void** save_sp, void* load_sp);
asm(R"(
    .text
    .p2align 4
    .globl emu_ctx_switch
    .hidden emu_ctx_switch
    .type emu_ctx_switch,@function
emu_ctx_switch:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    subq $8, %rsp
    stmxcsr (%rsp)
    fnstcw 4(%rsp)
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    ldmxcsr (%rsp)
    fldcw 4(%rsp)
    addq $8, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size emu_ctx_switch, .-emu_ctx_switch
)");
#endif

namespace emu {
namespace {

EMU_NO_ASAN void prepare_fiber(Fiber& f) {
#if defined(__x86_64__)
    auto top = reinterpret_cast<uintptr_t>(f.stack_lo + f.stack_size) & ~uintptr_t{15};
    auto* s = reinterpret_cast<uint64_t*>(top);
    s[-1] = 0;                                                // emu_fiber_entry's (never used) return address
    s[-2] = reinterpret_cast<uint64_t>(&emu_fiber_entry);   // where emu_ctx_switch's ret goes
    for (int i = 3; i <= 8; ++i) s[-i] = 0;                   // rbp rbx r12 r13 r14 r15
    s[-9] = 0x037full << 32 | 0x1f80u;                         // MXCSR default, x87 control word default
    f.sp = &s[-9];
#else
    getcontext(&f.context);
    f.context.uc_stack.ss_sp = f.stack_lo;
    f.context.uc_stack.ss_size = f.stack_size;
    f.context.uc_link = nullptr;
    makecontext(&f.context, &emu_fiber_entry, 0);
#endif
}

// Scheduler → fiber.
EMU_NO_ASAN void resume(Worker& w, Fiber& f) {
    t_lane = &f;
#if EMU_ASAN
    __sanitizer_start_switch_fiber(&w.scheduler_fake_stack, f.stack_lo, f.stack_size);
#endif
#if defined(__x86_64__)
    emu_ctx_switch(&w.scheduler_sp, f.sp);
#else
    swapcontext(&w.scheduler_context, &f.context);
#endif
#if EMU_ASAN
    __sanitizer_finish_switch_fiber(w.scheduler_fake_stack, nullptr, nullptr);
#endif
    t_lane = nullptr;
}

// Fiber → scheduler. Returns when the scheduler resumes this fiber (never, when it is Done).
EMU_NO_ASAN void suspend(Fiber& f) {
    Worker& w = *f.worker;
#if EMU_ASAN
    __sanitizer_start_switch_fiber(f.state == State::Done ? nullptr : &f.fake_stack, w.scheduler_stack_lo,
                                   w.scheduler_stack_size);
#endif
#if defined(__x86_64__)
    emu_ctx_switch(&f.sp, w.scheduler_sp);
#else
    swapcontext(&f.context, &w.scheduler_context);
#endif
#if EMU_ASAN
    __sanitizer_finish_switch_fiber(f.fake_stack, &w.scheduler_stack_lo, &w.scheduler_stack_size);
#endif
}

Fiber& current_fiber(const char* what) {
    if (t_lane == nullptr) {
        std::fprintf(stderr, "softprompt emulator: %s called outside a kernel\n", what);
        std::abort();
    }
    return *static_cast<Fiber*>(t_lane);
}

void release_block(Block& b, Worker& w) {
    for (unsigned i = 0; i < b.threads; ++i)
        if (w.fibers[i].state == State::AtBlockBarrier) w.fibers[i].state = State::Runnable;
    b.arrived = 0;
}

void release_warp(Block& b, Worker& w, unsigned warp) {
    Warp& wp = b.warps[warp];
    wp.participants[wp.pending_buffer] = wp.live_mask;
    wp.arrived = 0;
    const unsigned first = warp * 32, last = std::min(first + 32, b.threads);
    for (unsigned i = first; i < last; ++i)
        if (w.fibers[i].state == State::AtWarpOp) w.fibers[i].state = State::Runnable;
}

[[noreturn]] void finish_fiber(Fiber& f) {
    Block& b = *f.block;
    f.state = State::Done;
    ++b.done;
    --b.live;
    Warp& wp = b.warps[f.warp];
    --wp.live;
    wp.live_mask &= ~(1u << f.lane);
    if (b.arrived != 0 && b.arrived == b.live) release_block(b, *f.worker);
    if (wp.arrived != 0 && wp.arrived == wp.live) release_warp(b, *f.worker, f.warp);
    suspend(f);
    __builtin_unreachable();
}

void fail_block(Fiber& f, const std::string& message) {
    f.block->failed = true;
    f.block->launch->fail(message);
}

std::string deadlock_report(Block& b, Worker& w) {
    unsigned at_barrier = 0, at_warp = 0;
    const Fiber *barrier_example = nullptr, *warp_example = nullptr;
    for (unsigned i = 0; i < b.threads; ++i) {
        const Fiber& f = w.fibers[i];
        if (f.state == State::AtBlockBarrier) { ++at_barrier; if (!barrier_example) barrier_example = &f; }
        if (f.state == State::AtWarpOp) { ++at_warp; if (!warp_example) warp_example = &f; }
    }
    std::string message = format("deadlock in kernel '%s' block (%u,%u,%u): %u thread(s) wait at __syncthreads, "
                                 "%u at a warp operation (shuffle/vote/__syncwarp), %u finished",
                                 b.launch->kernel->name, b.idx.x, b.idx.y, b.idx.z, at_barrier, at_warp, b.done);
    if (barrier_example)
        message += format("; e.g. thread (%u,%u,%u) at __syncthreads", barrier_example->thread_idx.x,
                          barrier_example->thread_idx.y, barrier_example->thread_idx.z);
    if (warp_example)
        message += format("; e.g. thread (%u,%u,%u) at a warp operation", warp_example->thread_idx.x,
                          warp_example->thread_idx.y, warp_example->thread_idx.z);
    return message + ". A barrier or warp operation was reached by only part of the block or warp.";
}

void free_block_memory(Block& b) {
    for (SharedSite& s : b.shared) std::free(s.memory);
    b.shared.clear();
    std::free(b.dynamic_smem);
    b.dynamic_smem = nullptr;
}

EMU_NO_ASAN void abandon_fibers(Block& b, Worker& w) {
    // Fibers stopped mid-kernel leave their frames' ASan poison behind; clear it so the stacks can be reused.
    for (unsigned i = 0; i < b.threads; ++i) {
        Fiber& f = w.fibers[i];
        if (f.started && f.state != State::Done) {
#if EMU_ASAN
            __asan_unpoison_memory_region(f.stack_lo, f.stack_size);
#endif
        }
        f.state = State::Done;
    }
}

void run_block(Worker& w, Launch& launch, uint64_t linear_block) {
    Block& b = w.block;
    const dim3 g = launch.grid, d = launch.block;
    b.launch = &launch;
    b.idx = uint3{static_cast<unsigned>(linear_block % g.x), static_cast<unsigned>((linear_block / g.x) % g.y),
                  static_cast<unsigned>(linear_block / (static_cast<uint64_t>(g.x) * g.y))};
    b.threads = d.x * d.y * d.z;
    b.live = b.threads;
    b.arrived = b.done = 0;
    b.failed = false;
    const unsigned warps = (b.threads + 31) / 32;
    b.warps.resize(warps);
    for (unsigned i = 0; i < warps; ++i) {
        Warp& wp = b.warps[i];
        wp.live = std::min(32u, b.threads - i * 32);
        wp.live_mask = wp.live == 32 ? ~0u : (1u << wp.live) - 1u;
        wp.arrived = 0;
        wp.participants[0] = wp.participants[1] = 0;
    }
    b.dynamic_smem = std::malloc(launch.smem);  // malloc(0) too: any access to it is then out of bounds
    if (launch.smem) std::memset(b.dynamic_smem, 0xff, launch.smem);

    const size_t stack_size = stack_bytes();
    for (unsigned i = 0; i < b.threads; ++i) {
        Fiber& f = w.fibers[i];
        if (f.stack_lo == nullptr) {
            const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
            void* base = mmap(nullptr, stack_size + page, PROT_READ | PROT_WRITE,
                              MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
            if (base == MAP_FAILED) {
                launch.fail("emulator: could not map a fiber stack");
                free_block_memory(b);
                return;
            }
            mprotect(base, page, PROT_NONE);  // guard page: a stack overflow faults instead of corrupting
            f.stack_lo = static_cast<char*>(base) + page;
            f.stack_size = stack_size;
        }
        f.thread_idx = uint3{i % d.x, (i / d.x) % d.y, i / (d.x * d.y)};
        f.block_idx = b.idx;
        f.block_dim = d;
        f.grid_dim = g;
        f.dynamic_smem = b.dynamic_smem;
        f.rank = i;
        f.warp = i / 32;
        f.lane = i % 32;
        f.warp_ops = 0;
        f.block = &b;
        f.worker = &w;
        f.fake_stack = nullptr;
        f.cp_async.clear();
        f.cp_async_committed = 0;
        f.state = State::Runnable;
        f.started = false;
        prepare_fiber(f);
    }

    const bool reverse = launch.reverse_order;
    while (b.done < b.threads && !b.failed) {
        bool ran = false;
        for (unsigned j = 0; j < b.threads && !b.failed; ++j) {
            Fiber& f = w.fibers[reverse ? b.threads - 1 - j : j];
            if (f.state != State::Runnable) continue;
            f.started = true;
            resume(w, f);
            ran = true;
        }
        if (b.failed) break;
        if (launch.failed.load(std::memory_order_relaxed)) { b.failed = true; break; }
        if (!ran) {
            b.failed = true;
            launch.fail(deadlock_report(b, w));
        }
    }
    if (b.failed) abandon_fibers(b, w);
    free_block_memory(b);
}

void work(Worker& w, Launch& launch) {
    for (;;) {
        if (launch.failed.load(std::memory_order_relaxed)) return;
        const uint64_t i = launch.next.fetch_add(1);
        if (i >= launch.total) return;
        run_block(w, launch, i);
    }
}

// The calling thread plus `helpers` pool threads take blocks from the launch's counter.
class Pool {
public:
    explicit Pool(unsigned helpers) : helpers_(helpers) {
        for (unsigned i = 0; i < helpers; ++i) std::thread([this] { loop(); }).detach();
    }
    unsigned threads() const { return helpers_ + 1; }

    void run(Launch& launch) {
        if (helpers_ == 0 || launch.total == 1) {
            work(caller_, launch);
            return;
        }
        {
            std::lock_guard<std::mutex> lock(mutex_);
            current_ = &launch;
            ++generation_;
            busy_ = helpers_;
        }
        wake_.notify_all();
        work(caller_, launch);
        std::unique_lock<std::mutex> lock(mutex_);
        idle_.wait(lock, [this] { return busy_ == 0; });
        current_ = nullptr;
    }

private:
    void loop() {
        auto worker = std::make_unique<Worker>();
        uint64_t seen = 0;
        for (;;) {
            Launch* launch;
            {
                std::unique_lock<std::mutex> lock(mutex_);
                wake_.wait(lock, [&] { return generation_ != seen; });
                seen = generation_;
                launch = current_;
            }
            work(*worker, *launch);
            std::lock_guard<std::mutex> lock(mutex_);
            if (--busy_ == 0) idle_.notify_one();
        }
    }

    unsigned helpers_;
    Worker caller_;  // launches are serialized, so one worker serves every calling thread
    std::mutex mutex_;
    std::condition_variable wake_, idle_;
    Launch* current_ = nullptr;
    uint64_t generation_ = 0;
    unsigned busy_ = 0;
};

Pool& pool() {
    // Never destroyed: pool threads are detached and may still wait on the condition variable at exit.
    static Pool* p = [] {
        unsigned n = std::min(std::max(1u, std::thread::hardware_concurrency()), 8u);
        if (const char* s = std::getenv("SOFTPROMPT_EMU_THREADS")) n = std::max(1ul, std::strtoul(s, nullptr, 10));
        return new Pool(n - 1);
    }();
    return *p;
}

// Whether blocks sweep their threads in reverse rank order (SOFTPROMPT_EMU_ORDER=reverse at load; emu_set_reverse_order).
std::atomic<bool>& reverse_order() {
    static std::atomic<bool> reverse{[] {
        const char* s = std::getenv("SOFTPROMPT_EMU_ORDER");
        return s != nullptr && std::strcmp(s, "reverse") == 0;
    }()};
    return reverse;
}

std::mutex& launch_mutex() {
    static std::mutex m;
    return m;
}

thread_local std::string last_error;

int set_error(std::string message) {
    last_error = std::move(message);
    return 1;
}

}  // namespace

// ── device-side entry points used by emu_device.h ──

void block_barrier() {
    Fiber& f = current_fiber("__syncthreads");
    Block& b = *f.block;
    if (++b.arrived == b.live) {
        release_block(b, *f.worker);  // the last thread to arrive releases the others and runs on
        return;
    }
    f.state = State::AtBlockBarrier;
    suspend(f);
}

const uint64_t* warp_exchange(uint64_t mine, uint32_t* participants) {
    Fiber& f = current_fiber("a warp operation");
    Block& b = *f.block;
    Warp& wp = b.warps[f.warp];
    const unsigned buffer = f.warp_ops++ & 1u;
    wp.slots[buffer][f.lane] = mine;
    wp.pending_buffer = buffer;
    if (++wp.arrived == wp.live) {
        release_warp(b, *f.worker, f.warp);
    } else {
        f.state = State::AtWarpOp;
        suspend(f);
    }
    *participants = wp.participants[buffer];
    return wp.slots[buffer];
}

void* shared_alloc(const void* site, size_t bytes, size_t align) {
    Fiber& f = current_fiber("SHARED");
    Block& b = *f.block;
    for (const SharedSite& s : b.shared)
        if (s.site == site) return s.memory;
    void* memory = nullptr;
    if (posix_memalign(&memory, align, bytes == 0 ? 1 : bytes) != 0) trap("out of memory for SHARED()", __FILE__, __LINE__, __func__);
    std::memset(memory, 0xff, bytes);
    b.shared.push_back({site, memory});
    return memory;
}

void trap(const char* what, const char* file, int line, const char* function) {
    Fiber& f = current_fiber(what);
    fail_block(f, format("%s: %s at %s:%d (%s)", where(f).c_str(), what, file, line, function));
    f.state = State::Done;
    suspend(f);  // the scheduler abandons the block; this fiber is never resumed
    __builtin_unreachable();
}

void threadfence() { std::atomic_thread_fence(std::memory_order_seq_cst); }

void cp_async_issue(void* dst, const unsigned char (&data)[16]) {
    Fiber& f = current_fiber("cp_async_16");
    PendingCopy& c = f.cp_async.emplace_back();
    c.dst = dst;
    c.group = f.cp_async_committed;
    std::memcpy(c.data, data, 16);
}

void cp_async_commit() { ++current_fiber("cp_async_commit").cp_async_committed; }

void cp_async_wait(unsigned pending) {
    Fiber& f = current_fiber("cp_async_wait");
    if (f.cp_async_committed <= pending) return;
    const unsigned landed = f.cp_async_committed - pending;  // groups [0, landed) must be complete
    size_t kept = 0;
    for (PendingCopy& c : f.cp_async) {
        if (c.group < landed) std::memcpy(c.dst, c.data, 16);
        else f.cp_async[kept++] = c;
    }
    f.cp_async.resize(kept);
}

}  // namespace emu

// Every fiber starts here (entered by emu_ctx_switch's ret, or makecontext).
extern "C" EMU_NO_ASAN __attribute__((noinline)) void emu_fiber_entry() {
    auto& f = *static_cast<emu::Fiber*>(emu::t_lane);
#if EMU_ASAN
    __sanitizer_finish_switch_fiber(nullptr, &f.worker->scheduler_stack_lo, &f.worker->scheduler_stack_size);
#endif
    const emu::Launch& launch = *f.block->launch;
    try {
        launch.kernel->invoke(launch.kernel->function, launch.args);
    } catch (const std::exception& e) {
        emu::fail_block(f, emu::where(f) + ": C++ exception: " + e.what());
    } catch (...) {
        emu::fail_block(f, emu::where(f) + ": C++ exception");
    }
    emu::finish_fiber(f);
}

// ── exported C API (used by SoftPrompt.Cuda.Emulation.EmulatedDevice) ──

EMU_API int emu_abi_version() { return 1; }
EMU_API int emu_is_asan() { return EMU_ASAN; }
EMU_API int emu_worker_threads() { return static_cast<int>(emu::pool().threads()); }
EMU_API int emu_kernel_count() { return emu::kernel_table_size; }
// Sets whether later launches sweep each block's threads in reverse rank order; returns the previous setting.
EMU_API int emu_set_reverse_order(int reverse) { return emu::reverse_order().exchange(reverse != 0) ? 1 : 0; }

EMU_API const char* emu_kernel_name(int kernel) {
    return kernel >= 0 && kernel < emu::kernel_table_size ? emu::kernel_table[kernel].name : nullptr;
}
EMU_API int emu_kernel_arg_count(int kernel) {
    return kernel >= 0 && kernel < emu::kernel_table_size ? emu::kernel_table[kernel].arg_count : -1;
}
EMU_API const uint32_t* emu_kernel_arg_sizes(int kernel) {
    return kernel >= 0 && kernel < emu::kernel_table_size ? emu::kernel_table[kernel].arg_sizes : nullptr;
}
// The last error of emu_launch on this thread ("" when none); valid until the next emu_launch on this thread.
EMU_API const char* emu_last_error() { return emu::last_error.c_str(); }

// Runs a launch to completion. Returns 0, or 1 with emu_last_error() describing the failure.
EMU_API int emu_launch(int kernel, uint32_t gx, uint32_t gy, uint32_t gz, uint32_t bx, uint32_t by, uint32_t bz,
                       uint32_t shared_bytes, void** args, int arg_count) {
    using emu::format;
    emu::last_error.clear();
    if (kernel < 0 || kernel >= emu::kernel_table_size) return emu::set_error(format("unknown kernel handle %d", kernel));
    const emu::KernelEntry& k = emu::kernel_table[kernel];
    if (arg_count != k.arg_count)
        return emu::set_error(format("kernel '%s' takes %d arguments; the launch passed %d", k.name, k.arg_count, arg_count));
    if (arg_count > 0 && args == nullptr) return emu::set_error(format("kernel '%s': null argument array", k.name));
    for (int i = 0; i < arg_count; ++i)
        if (args[i] == nullptr) return emu::set_error(format("kernel '%s': argument %d is a null pointer to its value", k.name, i));
    if (bx == 0 || by == 0 || bz == 0 || bx > 1024 || by > 1024 || bz > 64 || static_cast<uint64_t>(bx) * by * bz > emu::kMaxBlockThreads)
        return emu::set_error(format("kernel '%s': invalid block (%u,%u,%u): each dimension ≥ 1, x,y ≤ 1024, z ≤ 64, "
                                     "at most 1024 threads", k.name, bx, by, bz));
    if (gx == 0 || gy == 0 || gz == 0 || gx > 0x7fffffffu || gy > 65535 || gz > 65535)
        return emu::set_error(format("kernel '%s': invalid grid (%u,%u,%u): x ≤ 2^31-1, y,z ≤ 65535, each ≥ 1", k.name, gx, gy, gz));
    if (shared_bytes > emu::kMaxDynamicSmem)
        return emu::set_error(format("kernel '%s': %u bytes of dynamic shared memory exceed the %zu-byte maximum", k.name,
                                     shared_bytes, emu::kMaxDynamicSmem));

    std::lock_guard<std::mutex> lock(emu::launch_mutex());
    emu::Launch launch;
    launch.kernel = &k;
    launch.args = args;
    launch.grid = dim3(gx, gy, gz);
    launch.block = dim3(bx, by, bz);
    launch.smem = shared_bytes;
    launch.total = static_cast<uint64_t>(gx) * gy * gz;
    launch.reverse_order = emu::reverse_order().load();
    emu::pool().run(launch);
    if (launch.failed.load()) return emu::set_error(launch.error);
    return 0;
}

// Device memory of the emulated device: posix_memalign with the exact size (so the ASan build's redzone starts right
// after the last byte; .NET's NativeMemory.AlignedAlloc rounds the size up to the alignment) and cudaMalloc's alignment.
EMU_API void* emu_alloc(size_t bytes, size_t alignment) {
    void* memory = nullptr;
    return posix_memalign(&memory, alignment, bytes == 0 ? 1 : bytes) == 0 ? memory : nullptr;
}
EMU_API void emu_free(void* memory) { std::free(memory); }
EMU_API void emu_memcpy(void* destination, const void* source, size_t bytes) { std::memcpy(destination, source, bytes); }
EMU_API void emu_memset(void* destination, int value, size_t bytes) { std::memset(destination, value, bytes); }

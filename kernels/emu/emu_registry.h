// emu_registry.h — the kernel table of libsoftprompt_emu.so. The build generates one translation unit that
// includes every kernels/*.cu and lists each extern "C" __global__ kernel with EMU_KERNEL(name); the templates
// below deduce each kernel's parameter types and build a trampoline that unpacks the CUDA-style
// `void** kernelParams` (one pointer per argument value) into a typed call.
#pragma once
#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <utility>

namespace emu {

struct KernelEntry {
    const char* name;
    void* function;
    void (*invoke)(void* function, void** args);
    int arg_count;
    const uint32_t* arg_sizes;  // arg_count byte sizes, then a 0
};

template <typename... A>
struct ArgSizes {
    static constexpr uint32_t value[] = {static_cast<uint32_t>(sizeof(A))..., 0u};
};

template <typename... A, std::size_t... I>
inline void invoke_with(void* function, void** args, std::index_sequence<I...>) {
    (void)args;
    reinterpret_cast<void (*)(A...)>(function)(*static_cast<std::remove_cv_t<A>*>(args[I])...);
}

template <typename... A>
void invoke(void* function, void** args) {
    invoke_with<A...>(function, args, std::index_sequence_for<A...>{});
}

template <typename... A>
KernelEntry make_entry(const char* name, void (*function)(A...)) {
    static_assert((std::is_trivially_copyable_v<A> && ...), "kernel parameters must be trivially copyable");
    return {name, reinterpret_cast<void*>(function), &invoke<A...>, static_cast<int>(sizeof...(A)), ArgSizes<A...>::value};
}

// Defined by the generated registry translation unit.
extern const KernelEntry kernel_table[];
extern const int kernel_table_size;

}  // namespace emu

#define EMU_KERNEL(name) ::emu::make_entry(#name, &name)

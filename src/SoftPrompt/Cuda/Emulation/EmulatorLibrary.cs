using System.Runtime.InteropServices;

namespace SoftPrompt.Cuda.Emulation;

/// <summary>One kernel of the emulator library: its extern "C" name and the byte size of each parameter.</summary>
public sealed record EmulatedKernel(string Name, int Index, IReadOnlyList<int> ParameterSizes);

/// <summary>
/// libsoftprompt_emu.so (kernels/*.cu compiled for the CPU by kernels/build-kernels.sh), loaded once per path for the
/// life of the process (its worker threads never stop, so it is never unloaded).
/// Which file: <c>SOFTPROMPT_EMU_LIB</c> when set; otherwise the AddressSanitizer build
/// (libsoftprompt_emu_asan.so) when the ASan runtime is preloaded into this process, else libsoftprompt_emu.so,
/// looked for in <c>emu/</c> next to the assembly, next to the assembly, then in <c>kernels/build/emu/</c> of the
/// enclosing source tree.
/// </summary>
public sealed unsafe class EmulatorLibrary
{
    public const string PathVariable = "SOFTPROMPT_EMU_LIB";
    public const string FileName = "libsoftprompt_emu.so";
    public const string AsanFileName = "libsoftprompt_emu_asan.so";
    public const string NotBuiltMessage = "the kernel emulator was not built: run ./build.sh kernels (needs g++)";

    private static readonly Lock Gate = new();
    private static readonly Dictionary<string, EmulatorLibrary> Loaded = new(StringComparer.Ordinal);

    private readonly delegate* unmanaged<int, uint, uint, uint, uint, uint, uint, uint, void**, int, int> launch;
    private readonly delegate* unmanaged<byte*> lastError;
    private readonly delegate* unmanaged<void*, void*, nuint, void> copy;
    private readonly delegate* unmanaged<void*, int, nuint, void> fill;
    private readonly delegate* unmanaged<nuint, nuint, void*> alloc;
    private readonly delegate* unmanaged<void*, void> free;
    private readonly delegate* unmanaged<int, int> setReverseOrder;
    private readonly Dictionary<string, EmulatedKernel> byName = new(StringComparer.Ordinal);

    private EmulatorLibrary(string path, nint handle)
    {
        Path = path;
        T Export<T>(string name) where T : unmanaged
        {
            if (!NativeLibrary.TryGetExport(handle, name, out nint address))
                throw new CudaException($"{path} has no export '{name}': it is not a SoftPrompt kernel emulator library, or an old one (rebuild with ./build.sh kernels).");
            return *(T*)&address;
        }

        var abiVersion = Export<nint>("emu_abi_version");
        if (((delegate* unmanaged<int>)abiVersion)() != 1)
            throw new CudaException($"{path} speaks emulator ABI {((delegate* unmanaged<int>)abiVersion)()}, this library expects 1: rebuild with ./build.sh kernels.");
        launch = (delegate* unmanaged<int, uint, uint, uint, uint, uint, uint, uint, void**, int, int>)Export<nint>("emu_launch");
        lastError = (delegate* unmanaged<byte*>)Export<nint>("emu_last_error");
        copy = (delegate* unmanaged<void*, void*, nuint, void>)Export<nint>("emu_memcpy");
        fill = (delegate* unmanaged<void*, int, nuint, void>)Export<nint>("emu_memset");
        alloc = (delegate* unmanaged<nuint, nuint, void*>)Export<nint>("emu_alloc");
        free = (delegate* unmanaged<void*, void>)Export<nint>("emu_free");
        IsAddressSanitized = ((delegate* unmanaged<int>)Export<nint>("emu_is_asan"))() != 0;
        var workerThreads = (delegate* unmanaged<int>)Export<nint>("emu_worker_threads");
        setReverseOrder = (delegate* unmanaged<int, int>)Export<nint>("emu_set_reverse_order");
        var count = ((delegate* unmanaged<int>)Export<nint>("emu_kernel_count"))();
        var name = (delegate* unmanaged<int, byte*>)Export<nint>("emu_kernel_name");
        var argCount = (delegate* unmanaged<int, int>)Export<nint>("emu_kernel_arg_count");
        var argSizes = (delegate* unmanaged<int, uint*>)Export<nint>("emu_kernel_arg_sizes");

        var kernels = new EmulatedKernel[count];
        for (int i = 0; i < count; i++)
        {
            int n = argCount(i);
            uint* sizes = argSizes(i);
            var parameterSizes = new int[n];
            for (int p = 0; p < n; p++) parameterSizes[p] = (int)sizes[p];
            kernels[i] = new EmulatedKernel(Marshal.PtrToStringUTF8((nint)name(i))!, i, parameterSizes);
            byName[kernels[i].Name] = kernels[i];
        }
        Kernels = kernels;
        WorkerThreads = workerThreads();
    }

    /// <summary>The file that was loaded.</summary>
    public string Path { get; }
    /// <summary>Built with AddressSanitizer (every kernel memory access is checked).</summary>
    public bool IsAddressSanitized { get; }
    /// <summary>OS threads that run blocks (SOFTPROMPT_EMU_THREADS, default min(cores, 8)).</summary>
    public int WorkerThreads { get; }
    public IReadOnlyList<EmulatedKernel> Kernels { get; }

    /// <summary>
    /// Whether later launches of this library's kernels sweep each block's threads in reverse rank order (process-wide;
    /// SOFTPROMPT_EMU_ORDER=reverse sets it at load). Threads run from one barrier or warp operation to the next in
    /// sweep order, so a shared-memory hand-off that lacks its barrier reads stale data in one of the two orders.
    /// </summary>
    public bool ReverseThreadOrder
    {
        get { int previous = setReverseOrder(0); setReverseOrder(previous); return previous != 0; }
        set => setReverseOrder(value ? 1 : 0);
    }

    public EmulatedKernel? Find(string name) => byName.GetValueOrDefault(name);

    /// <summary>Whether the AddressSanitizer runtime is loaded into this process (LD_PRELOAD=libasan.so).</summary>
    public static bool AsanRuntimeLoaded =>
        NativeLibrary.TryGetExport(NativeLibrary.GetMainProgramHandle(), "__asan_init", out _);

    /// <summary>Loads (once) the library at <paramref name="path"/>, or the default one (see the class summary).</summary>
    /// <exception cref="CudaException">Not built, not loadable, or an ASan build without the ASan runtime.</exception>
    public static EmulatorLibrary Load(string? path = null)
    {
        path ??= Locate(out string searched) ?? throw new CudaException($"{NotBuiltMessage}; looked in {searched}.");
        path = System.IO.Path.GetFullPath(path);
        lock (Gate)
        {
            if (Loaded.TryGetValue(path, out var library)) return library;
            if (!File.Exists(path)) throw new CudaException($"{path} does not exist: {NotBuiltMessage}.");
            if (System.IO.Path.GetFileName(path).Contains("asan", StringComparison.OrdinalIgnoreCase) && !AsanRuntimeLoaded)
                throw new CudaException(
                    $"{path} is the AddressSanitizer build, but the ASan runtime is not loaded: start the process with " +
                    "LD_PRELOAD=$(g++ -print-file-name=libasan.so) ASAN_OPTIONS=detect_leaks=0 (./build.sh test does), or use " + FileName + ".");
            nint handle;
            try
            {
                handle = NativeLibrary.Load(path);
            }
            catch (DllNotFoundException e)
            {
                throw new CudaException($"{path} could not be loaded: {e.Message}", e);
            }
            library = new EmulatorLibrary(path, handle);
            Loaded[path] = library;
            return library;
        }
    }

    /// <summary>The library <see cref="Load"/> would pick, or null; <paramref name="searched"/> lists where it looked.</summary>
    public static string? Locate(out string searched)
    {
        string? fromEnvironment = Environment.GetEnvironmentVariable(PathVariable);
        if (!string.IsNullOrEmpty(fromEnvironment))
        {
            searched = $"{PathVariable}={fromEnvironment}";
            return File.Exists(fromEnvironment) ? fromEnvironment : null;
        }
        return Locate(FileName, AsanFileName, System.IO.Path.Combine("kernels", "build", "emu"), out searched);
    }

    /// <summary>
    /// The emulator library <paramref name="fileName"/> (or <paramref name="asanFileName"/> under the ASan runtime) in
    /// <c>emu/</c> next to the assembly, next to the assembly, or in <paramref name="buildFolder"/> of the enclosing
    /// source tree; null when none is there. The tests find their test-only kernel module's library so.
    /// </summary>
    public static string? Locate(string fileName, string asanFileName, string buildFolder, out string searched)
    {
        var directories = new List<string>();
        string baseDirectory = AppContext.BaseDirectory;
        directories.Add(System.IO.Path.Combine(baseDirectory, "emu"));
        directories.Add(baseDirectory);
        for (var dir = new DirectoryInfo(baseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(System.IO.Path.Combine(dir.FullName, "kernels", "build-kernels.sh")))
            {
                directories.Add(System.IO.Path.Combine(dir.FullName, buildFolder));
                break;
            }
        searched = string.Join(", ", directories);
        // Under the ASan runtime prefer the ASan build; the plain build also runs there (unchecked).
        string[] names = AsanRuntimeLoaded ? [asanFileName, fileName] : [fileName];
        foreach (string name in names)
            foreach (string dir in directories)
            {
                string candidate = System.IO.Path.Combine(dir, name);
                if (File.Exists(candidate)) return candidate;
            }
        return null;
    }

    /// <summary>Runs a launch to completion; returns null, or the emulator's error message.</summary>
    internal string? Launch(int kernel, Dim3 grid, Dim3 block, uint sharedMemoryBytes, void** arguments, int argumentCount)
    {
        int rc = launch(kernel, grid.X, grid.Y, grid.Z, block.X, block.Y, block.Z, sharedMemoryBytes, arguments, argumentCount);
        return rc == 0 ? null : Marshal.PtrToStringUTF8((nint)lastError()) ?? "unknown emulator error";
    }

    /// <summary>memcpy inside the library, so the ASan build checks both ranges.</summary>
    internal void Copy(void* destination, void* source, nuint bytes) => copy(destination, source, bytes);

    internal void Fill(void* destination, int value, nuint bytes) => fill(destination, value, bytes);

    /// <summary>
    /// posix_memalign of exactly <paramref name="bytes"/> inside the library (malloc's heap, so the ASan build puts a
    /// redzone right after the last byte; NativeMemory.AlignedAlloc would round the size up to the alignment).
    /// </summary>
    internal void* Allocate(nuint bytes, nuint alignment) => alloc(bytes, alignment);

    internal void Free(void* memory) => free(memory);
}

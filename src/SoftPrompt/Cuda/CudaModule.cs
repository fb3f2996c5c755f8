using System.Runtime.InteropServices;
using System.Text;
using SoftPrompt.Cuda.Interop;

namespace SoftPrompt.Cuda;

/// <summary>
/// A kernel module (PTX JIT-compiled by the driver for this GPU) loaded into a device's context. Its
/// <see cref="KernelFunction"/>s are valid while the module is alive.
/// </summary>
public sealed unsafe class CudaModule : IDisposable
{
    private const int LogBytes = 32 * 1024;

    private readonly CudaDevice device;
    private readonly CudaModuleHandle handle;
    private readonly Dictionary<string, KernelFunction> functions = new(StringComparer.Ordinal);
    // Names another module holds (a device with added modules asks each in turn), so a miss costs the driver once.
    private readonly HashSet<string> missing = new(StringComparer.Ordinal);

    private CudaModule(CudaDevice device, CudaModuleHandle handle, string infoLog, double jitMilliseconds)
    {
        this.device = device;
        this.handle = handle;
        InfoLog = infoLog;
        JitMilliseconds = jitMilliseconds;
    }

    /// <summary>The JIT's info log (register and spill reports when verbose); empty if it said nothing.</summary>
    public string InfoLog { get; }
    /// <summary>How long cuModuleLoadDataEx took (for PTX, mostly the JIT).</summary>
    public double JitMilliseconds { get; }

    /// <summary>JIT-compiles <paramref name="ptx"/>; on failure the exception carries the JIT's error log.</summary>
    internal static CudaModule Load(CudaDevice device, string ptx, string origin)
    {
        // cuModuleLoadDataEx takes PTX as a NUL-terminated string.
        int length = Encoding.UTF8.GetByteCount(ptx);
        byte[] image = new byte[length + 1];
        Encoding.UTF8.GetBytes(ptx, image);
        return LoadImage(device, image, origin, $"{length} bytes of PTX", isBinary: false);
    }

    /// <summary>Loads a cubin built ahead of time for this GPU's architecture: no JIT at all.</summary>
    internal static CudaModule LoadBinary(CudaDevice device, byte[] cubin, string origin) =>
        LoadImage(device, cubin, origin, $"{cubin.Length} bytes of cubin", isBinary: true);

    /// <summary>True when the module came from a prebuilt cubin, false when the driver JIT-compiled PTX.</summary>
    public bool IsBinary { get; private init; }

    private static CudaModule LoadImage(CudaDevice device, byte[] image, string origin, string what, bool isBinary)
    {
        byte* info = (byte*)NativeMemory.AllocZeroed(LogBytes);
        byte* error = (byte*)NativeMemory.AllocZeroed(LogBytes);
        try
        {
            CuJitOption* options = stackalloc CuJitOption[5];
            void** values = stackalloc void*[5];
            options[0] = CuJitOption.InfoLogBuffer; values[0] = info;
            // Sizes go in by value in the pointer slot and come back the same way; keep the last byte as a NUL.
            options[1] = CuJitOption.InfoLogBufferSizeBytes; values[1] = (void*)(nuint)(LogBytes - 1);
            options[2] = CuJitOption.ErrorLogBuffer; values[2] = error;
            options[3] = CuJitOption.ErrorLogBufferSizeBytes; values[3] = (void*)(nuint)(LogBytes - 1);
            options[4] = CuJitOption.LogVerbose; values[4] = (void*)1;

            device.MakeCurrent();
            nint module;
            long started = System.Diagnostics.Stopwatch.GetTimestamp();
            CuResult result;
            fixed (byte* data = image)
                result = CudaDriver.cuModuleLoadDataEx(&module, data, 5, options, values);
            double ms = System.Diagnostics.Stopwatch.GetElapsedTime(started).TotalMilliseconds;
            string infoLog = ReadLog(info, values[1]);
            if (result != CuResult.Success)
            {
                string errorLog = ReadLog(error, values[3]);
                string log = errorLog.Length > 0 ? "JIT error log:" + Environment.NewLine + errorLog : "the JIT wrote no error log";
                throw CudaCheck.Failure(result, $"cuModuleLoadDataEx({origin}, {what})", detail: log);
            }
            return new CudaModule(device, new CudaModuleHandle(device.Context, module), infoLog, ms) { IsBinary = isBinary };
        }
        finally
        {
            NativeMemory.Free(info);
            NativeMemory.Free(error);
        }
    }

    /// <summary>The kernel named <paramref name="name"/> (its extern "C" name); looked up once and cached.</summary>
    public KernelFunction GetFunction(string name) =>
        TryGetFunction(name) ?? throw new CudaException(
            $"Kernel '{name}' is not in the kernel module — the name must match an extern \"C\" __global__ function; " +
            "rebuild the kernels (./build.sh kernels) if it was added recently");

    /// <summary>The kernel named <paramref name="name"/>, or null when this module has none of that name.</summary>
    public KernelFunction? TryGetFunction(string name)
    {
        ObjectDisposedException.ThrowIf(handle.IsClosed, this);
        if (functions.TryGetValue(name, out var known)) return known;
        if (missing.Contains(name)) return null;
        device.MakeCurrent();
        nint function;
        var utf8 = Encoding.UTF8.GetBytes(name + "\0");
        CuResult result;
        fixed (byte* p = utf8)
            result = CudaDriver.cuModuleGetFunction(&function, handle.DangerousGetHandle(), p);
        if (result == CuResult.NotFound)
        {
            missing.Add(name);
            return null;
        }
        CudaCheck.Driver(result, $"cuModuleGetFunction({name})");
        var kernel = new KernelFunction(name, function, Attribute(function, CuFunctionAttribute.MaxThreadsPerBlock, name));
        functions.Add(name, kernel);
        return kernel;
    }

    /// <summary>Registers, shared and local memory and the PTX/SASS versions the JIT produced for <paramref name="kernel"/>.</summary>
    public KernelAttributes GetAttributes(KernelFunction kernel)
    {
        device.MakeCurrent();
        nint f = kernel.Handle;
        string n = kernel.Name;
        return new KernelAttributes(
            Attribute(f, CuFunctionAttribute.MaxThreadsPerBlock, n),
            Attribute(f, CuFunctionAttribute.NumRegs, n),
            Attribute(f, CuFunctionAttribute.SharedSizeBytes, n),
            Attribute(f, CuFunctionAttribute.LocalSizeBytes, n),
            Attribute(f, CuFunctionAttribute.ConstSizeBytes, n),
            Attribute(f, CuFunctionAttribute.PtxVersion, n),
            Attribute(f, CuFunctionAttribute.BinaryVersion, n),
            Attribute(f, CuFunctionAttribute.MaxDynamicSharedSizeBytes, n));
    }

    public void Dispose()
    {
        if (handle.IsClosed) return;
        // A later module may get the same CUfunction values; the device must not think their limits are raised.
        foreach (var kernel in functions.Values) device.ForgetKernel(kernel);
        handle.Dispose();
    }

    private static int Attribute(nint function, CuFunctionAttribute attribute, string name)
    {
        int value = 0;
        CudaCheck.Driver(CudaDriver.cuFuncGetAttribute(&value, attribute, function), $"cuFuncGetAttribute({attribute}, {name})");
        return value;
    }

    private static string ReadLog(byte* buffer, void* writtenBytes)
    {
        int written = (int)Math.Min((nuint)writtenBytes, (nuint)(LogBytes - 1));
        var span = new ReadOnlySpan<byte>(buffer, written);
        int nul = span.IndexOf((byte)0);
        return Encoding.UTF8.GetString(nul >= 0 ? span[..nul] : span).Trim();
    }
}

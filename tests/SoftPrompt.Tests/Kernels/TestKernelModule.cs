using SoftPrompt.Cuda;
using SoftPrompt.Cuda.Emulation;

namespace SoftPrompt.Tests.Kernels;

/// <summary>
/// The test-only kernel module, tests/kernels/*.cu (kernels only the tests launch, through the generated
/// <c>TestKernelStubs</c>): kernels/build-kernels.sh builds it into kernels/build/tests/; its PTX is embedded in this
/// assembly and its emulator library copied to emu/ beside it, so it travels with the tests (the GPU bundle too) and
/// never with the CLI. <see cref="Emulation.TestDevices"/> adds it to every device it opens.
/// </summary>
internal static class TestKernelModule
{
    public const string PtxResource = "SoftPrompt.Tests.Kernels.softprompt_tests.ptx";
    public const string EmulatorFileName = "libsoftprompt_tests_emu.so";
    public const string AsanEmulatorFileName = "libsoftprompt_tests_emu_asan.so";
    public const string NotBuiltMessage = "the test-only kernel module (tests/kernels) was not built: run ./build.sh kernels";

    private static readonly Lazy<string?> PtxText = new(() =>
    {
        using Stream? stream = typeof(TestKernelModule).Assembly.GetManifestResourceStream(PtxResource);
        if (stream is null) return null;
        using var reader = new StreamReader(stream);
        return reader.ReadToEnd();
    });

    /// <summary>The module's PTX, or null when nvcc did not build it.</summary>
    public static string? Ptx => PtxText.Value;

    /// <summary>The module's emulator library (the ASan build under the ASan runtime, as for the product's).</summary>
    public static EmulatorLibrary LoadEmulator() =>
        EmulatorLibrary.Load(EmulatorLibrary.Locate(EmulatorFileName, AsanEmulatorFileName, Path.Combine("kernels", "build", "tests", "emu"), out string searched)
                             ?? throw new CudaException($"{NotBuiltMessage}; looked in {searched}."));

    public static void AddTo(EmulatedDevice device) => device.AddKernelLibrary(LoadEmulator());

    /// <summary>JIT-compiles the PTX into the device's context (the driver caches the compilation across processes).</summary>
    public static void AddTo(CudaDevice device) =>
        device.AddKernelModule(device.LoadModule(Ptx ?? throw new CudaException($"{NotBuiltMessage} (needs nvcc)"), "test kernel module"));
}

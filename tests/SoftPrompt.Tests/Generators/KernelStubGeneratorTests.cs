using System.Reflection;
using Microsoft.CodeAnalysis;
using SoftPrompt.Cuda;
using SoftPrompt.Cuda.Kernels;

namespace SoftPrompt.Tests.Generators;

/// <summary>KernelStubGenerator: .cu declarations in, typed stubs that pack the kernel's parameters in its order out.</summary>
public sealed class KernelStubGeneratorTests
{
    private const string Kernels = """
        #include "common.cuh"
        // A comment that mentions extern "C" __global__ void is not a declaration.
        extern "C" __global__ void __launch_bounds__(256, 2) scale_rows(float* __restrict__ y, const float* __restrict__ x,
                                                                        const int* rows_index,  // which rows
                                                                        int rows, float scale, long long total) {
            y[0] = x[0] * scale;
        }
        extern "C" __global__ void bits(bf16* out, unsigned* votes, const unsigned int count) {}
        extern "C" __global__ void no_arguments() {}
        """;

    private const string Family = """
        extern "C" __global__ void tile_hs16(float* out, int hs) {}
        extern "C" __global__ void tile_hs64(float* out, int hs) {}
        extern "C" __global__ void odd_hs16(float* out) {}
        extern "C" __global__ void odd_hs32(int* out) {}
        """;

    [Test]
    public void EachKernelGetsAStubWithItsParameterNamesAndTypesInItsOrder()
    {
        var stubs = StubCompilation.Create("", ("kernels/scale.cu", Kernels)).Load().GetType("SoftPrompt.Cuda.Kernels.KernelStubs")!;
        Assert.That(Signature(stubs, "scale_rows"), Is.EqualTo(
            "IComputeDevice device, LaunchShape shape, DeviceSpan`1[Single] y, DeviceSpan`1[Single] x, DeviceSpan`1[Int32] rows_index, Int32 rows, Single scale, Int64 total"));
        Assert.That(Signature(stubs, "bits"), Is.EqualTo(
            "IComputeDevice device, LaunchShape shape, DeviceSpan`1[UInt16] out, DeviceSpan`1[UInt32] votes, UInt32 count"));
        Assert.That(Signature(stubs, "no_arguments"), Is.EqualTo("IComputeDevice device, LaunchShape shape"));
        Assert.That(stubs.IsAbstract && stubs.IsSealed, "a static class");
    }

    [Test]
    public void AStubPacksItsArgumentsInTheKernelsOrderAndLaunchesWithItsShape()
    {
        var stubs = StubCompilation.Create("", ("kernels/scale.cu", Kernels)).Load().GetType("SoftPrompt.Cuda.Kernels.KernelStubs")!;
        var device = new RecordingDevice(8, 8, 8, 4, 4, 8);
        var y = new DeviceSpan<float>(0x1000, 4);
        var x = new DeviceSpan<float>(0x2000, 4);
        stubs.GetMethod("scale_rows")!.Invoke(null, [device, new LaunchShape(new Dim3(3, 2), 256, 64), y, x, default(DeviceSpan<int>), 7, 0.5f, 1L << 40]);

        Assert.That(device.Kernel, Is.EqualTo("scale_rows"));
        Assert.That((device.Grid, device.Block, device.SharedBytes), Is.EqualTo((new Dim3(3, 2), new Dim3(256), 64u)));
        // An empty span (an absent optional buffer) goes in as a null pointer.
        Assert.That(device.Arguments, Is.EqualTo(new ulong[] { 0x1000, 0x2000, 0, 7, BitConverter.SingleToUInt32Bits(0.5f), 1UL << 40 }));
    }

    [Test]
    public void KernelsCompiledPerHeadSizeGetOneFamilyStubThatPicksTheTile()
    {
        var stubs = StubCompilation.Create("", ("kernels/tile.cu", Family)).Load().GetType("SoftPrompt.Cuda.Kernels.KernelStubs")!;
        Assert.That(Signature(stubs, "tile"), Is.EqualTo("IComputeDevice device, Int32 headSizeTile, LaunchShape shape, DeviceSpan`1[Single] out, Int32 hs"));
        Assert.That(stubs.GetMethod("odd"), Is.Null, "members with different parameters have no family stub");

        var device = new RecordingDevice(8, 4);
        var family = stubs.GetMethod("tile")!;
        family.Invoke(null, [device, 64, new LaunchShape(1, 128), new DeviceSpan<float>(0x40, 1), 50]);
        Assert.That(device.Kernel, Is.EqualTo("tile_hs64"));
        Assert.That(device.Arguments, Is.EqualTo(new ulong[] { 0x40, 50 }));
        var wrongTile = Assert.Throws<TargetInvocationException>(() => family.Invoke(null, [device, 32, new LaunchShape(1, 128), default(DeviceSpan<float>), 1]));
        Assert.That(wrongTile!.InnerException, Is.TypeOf<ArgumentOutOfRangeException>().With.Message.Contains("16, 64"));
    }

    [Test]
    public void StubsComeFromEveryKernelFileAndAreSortedByName()
    {
        string source = StubCompilation.Create("", ("kernels/tile.cu", Family), ("kernels/scale.cu", Kernels)).StubSource!;
        var order = new[] { "bits(", "no_arguments(", "odd_hs16(", "scale_rows(", "tile_hs16(" }.Select(name => source.IndexOf("void " + name, StringComparison.Ordinal)).ToList();
        Assert.That(order, Is.All.GreaterThan(0));
        Assert.That(order, Is.Ordered);
        Assert.That(source, Does.Contain("/// <summary>kernels/scale.cu: scale_rows(float* y, float* x, int* rows_index, int rows, float scale, long long total).</summary>"));
    }

    [TestCase("extern \"C\" __global__ void\nsplit(float* y) {}", "kernels/bad.cu:1: unreadable kernel declaration")]
    [TestCase("extern \"C\" __global__ void unnamed(float*, int n) {}", "kernels/bad.cu:1: unreadable kernel declaration")]
    [TestCase("\nextern \"C\" __global__ void wide(double* y) {}", "kernels/bad.cu:2: wide: parameter 'y' has the C type 'double*'")]
    [TestCase("extern \"C\" __global__ void by_value(Pair p) {}", "kernels/bad.cu:1: by_value: parameter 'p' has the C type 'Pair'")]
    [TestCase("extern \"C\" __global__ void clash(float* shape) {}", "kernels/bad.cu:1: clash: parameter 'shape' is a name the stub uses itself")]
    public void DeclarationsWithoutAStubAreErrorsAtTheirLineAndNoStubsAreGenerated(string cu, string message)
    {
        var run = StubCompilation.Create("", ("/repo/kernels/bad.cu", cu), ("kernels/scale.cu", Kernels));
        var error = run.GeneratorDiagnostics.Single();
        Assert.That((error.Id, error.Severity), Is.EqualTo(("SP0003", DiagnosticSeverity.Error)));
        Assert.That(error.GetMessage(), Does.Contain(message));
        var where = error.Location.GetLineSpan();
        Assert.That((where.Path, where.StartLinePosition.Line + 1), Is.EqualTo(("/repo/kernels/bad.cu", int.Parse(message.Split(':')[1]))));
        Assert.That(run.StubSource, Is.Null);
    }

    private static string Signature(Type stubs, string name) =>
        string.Join(", ", stubs.GetMethod(name)!.GetParameters().Select(p => $"{p.ParameterType.Name}{Generic(p.ParameterType)} {p.Name}"));

    private static string Generic(Type type) => type.IsGenericType ? $"[{type.GetGenericArguments()[0].Name}]" : "";

    /// <summary>Records one launch: its kernel, shape and argument values, read with the given byte sizes.</summary>
    private sealed unsafe class RecordingDevice(params int[] sizes) : IComputeDevice
    {
        public string? Kernel { get; private set; }
        public Dim3 Grid { get; private set; }
        public Dim3 Block { get; private set; }
        public uint SharedBytes { get; private set; }
        public ulong[] Arguments { get; private set; } = [];

        public KernelFunction GetKernel(string name) => new(name, 0, 1024);

        public void Launch(KernelFunction kernel, Dim3 grid, Dim3 block, uint sharedMemoryBytes, void** arguments, int argumentCount)
        {
            Assert.That(argumentCount, Is.EqualTo(sizes.Length));
            (Kernel, Grid, Block, SharedBytes) = (kernel.Name, grid, block, sharedMemoryBytes);
            Arguments = [.. Enumerable.Range(0, argumentCount).Select(i => sizes[i] == 8 ? *(ulong*)arguments[i] : *(uint*)arguments[i])];
        }

        public string Kind => "recording";
        public string Description => "records launches";
        public DeviceBuffer<T> Allocate<T>(long count) where T : unmanaged => throw new NotSupportedException();
        public void Free(ulong address) => throw new NotSupportedException();
        public void CopyToDevice<T>(ReadOnlySpan<T> source, DeviceSpan<T> destination) where T : unmanaged => throw new NotSupportedException();
        public void CopyToHost<T>(DeviceSpan<T> source, Span<T> destination) where T : unmanaged => throw new NotSupportedException();
        public void CopyDeviceToDevice<T>(DeviceSpan<T> source, DeviceSpan<T> destination) where T : unmanaged => throw new NotSupportedException();
        public void Zero<T>(DeviceSpan<T> destination) where T : unmanaged => throw new NotSupportedException();
        public void Gemm(int m, int n, int k, float alpha, GemmOperand a, GemmOperand b, float beta, GemmOperand c, int batchCount = 1) => throw new NotSupportedException();
        public void GemmEpilogue(int m, int n, int k, float alpha, GemmOperand a, GemmOperand b, float beta, GemmOperand c, GemmOperand d, GemmEpilogue<float> epilogue) => throw new NotSupportedException();
        public void GemmEpilogue(int m, int n, int k, float alpha, Bf16GemmOperand a, Bf16GemmOperand b, float beta, GemmOperand c, GemmOperand d, GemmEpilogue<float> epilogue) => throw new NotSupportedException();
        public void GemmEpilogue(int m, int n, int k, float alpha, Bf16GemmOperand a, Bf16GemmOperand b, float beta, Bf16GemmOperand c, Bf16GemmOperand d, GemmEpilogue<ushort> epilogue) => throw new NotSupportedException();
        public void GemmBf16(int m, int n, int k, float alpha, Bf16GemmOperand a, Bf16GemmOperand b, float beta, GemmOperand c, int batchCount = 1) => throw new NotSupportedException();
        public void GemmBf16(int m, int n, int k, float alpha, Bf16GemmOperand a, Bf16GemmOperand b, float beta, Bf16GemmOperand c, int batchCount = 1) => throw new NotSupportedException();
        public void Synchronize() { }
        public void Dispose() { }
    }
}

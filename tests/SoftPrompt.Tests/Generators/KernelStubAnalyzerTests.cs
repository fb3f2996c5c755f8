using Microsoft.CodeAnalysis;

namespace SoftPrompt.Tests.Generators;

/// <summary>KernelStubAnalyzer: SP0001 (a kernel argument passed by position) and SP0002 (a launch packed by hand).</summary>
public sealed class KernelStubAnalyzerTests
{
    private const string Kernel = """extern "C" __global__ void axpy(float* y, const float* x, int n, float a) {}""";
    private const string Family = """
        extern "C" __global__ void tile_hs16(float* out, int hs) {}
        extern "C" __global__ void tile_hs32(float* out, int hs) {}
        """;

    private static IReadOnlyList<Diagnostic> Analyze(string body, string members = "")
    {
        string source = $$"""
            using SoftPrompt.Cuda;
            using SoftPrompt.Cuda.Kernels;
            unsafe delegate void LaunchDelegate(KernelFunction kernel, Dim3 grid, Dim3 block, uint sharedBytes, void** arguments, int count);
            static unsafe class Launcher
            {
                public static void Run(IComputeDevice device, DeviceSpan<float> y, DeviceSpan<float> x, int n)
                {
            {{body}}
                }
            {{members}}
            }
            """;
        var run = StubCompilation.Create(source, ("kernels/axpy.cu", Kernel), ("kernels/tile.cu", Family));
        Assert.That(run.Errors, Is.Empty, "the code under analysis compiles");
        return run.AnalyzerDiagnostics();
    }

    [Test]
    public void NamedKernelArgumentsAndTheGeneratedStubsThemselvesPass()
    {
        Assert.That(Analyze("""
            KernelStubs.axpy(device, new(1, 32), y: y, x: x, n: n, a: 2f);
            KernelStubs.axpy(device, shape: new(1, 32), a: 2f, n: n, x: x, y: y);
            KernelStubs.tile(device, 16, new(1, 32), @out: y, hs: 9);
            """), Is.Empty);
    }

    [Test]
    public void AKernelArgumentPassedByPositionIsAnErrorNamingItsParameter()
    {
        var found = Analyze("KernelStubs.axpy(device, new(1, 32), y, x: x, n: n, 2f);");
        Assert.That(found.Select(d => (d.Id, d.Severity)), Is.EqualTo(new[] { ("SP0001", DiagnosticSeverity.Error), ("SP0001", DiagnosticSeverity.Error) }));
        Assert.That(found.Select(d => d.GetMessage()), Has.Some.Contains("'y' of kernel axpy").And.Some.Contains("'a' of kernel axpy"));
        Assert.That(found.Select(d => d.Location.SourceTree!.ToString().Substring(d.Location.SourceSpan.Start, d.Location.SourceSpan.Length)), Is.EquivalentTo(new[] { "y", "2f" }));

        var family = Analyze("KernelStubs.tile(device, 16, new(1, 32), y, hs: 9);");
        Assert.That(family.Single().GetMessage(), Does.Contain("'out' of kernel tile"));
    }

    [Test]
    public void ASwapOfSameTypedArgumentsStaysVisibleAsNames()
    {
        // Both spans are DeviceSpan<float>: the swap compiles, but only with names that say what goes where.
        Assert.That(Analyze("KernelStubs.axpy(device, new(1, 32), y: x, x: y, n: n, a: 2f);"), Is.Empty);
        Assert.That(Analyze("KernelStubs.axpy(device, new(1, 32), x, y, n: n, a: 2f);").Select(d => d.Id), Is.EqualTo(new[] { "SP0001", "SP0001" }));
    }

    [TestCase("device.Launch(device.GetKernel(\"axpy\"), 1, 32, 0, null, 0);")]
    [TestCase("LaunchDelegate launch = device.Launch;")]
    [TestCase("((SoftPrompt.Cuda.Emulation.EmulatedDevice)device).Launch(device.GetKernel(\"axpy\"), 1, 32, 0, null, 0);")]
    public void LaunchingOutsideTheStubsIsAnError(string body)
    {
        var found = Analyze(body);
        Assert.That(found.Select(d => (d.Id, d.Severity)), Is.EqualTo(new[] { ("SP0002", DiagnosticSeverity.Error) }));
        Assert.That(found[0].GetMessage(), Does.Contain("KernelStubs"));
    }

    [Test]
    public void CodeMarkedGeneratedIsNoWayAround()
    {
        var found = Analyze("Helper(device);", """
            [System.CodeDom.Compiler.GeneratedCode("hand", "1")]
            static void Helper(IComputeDevice device) => device.Launch(device.GetKernel("axpy"), 1, 32, 0, null, 0);
            """);
        Assert.That(found.Select(d => d.Id), Is.EqualTo(new[] { "SP0002" }));
    }

    [Test]
    public void NothingHandWrittenCanJoinTheStubsClass()
    {
        const string intruder = """
            namespace SoftPrompt.Cuda.Kernels;
            static unsafe partial class KernelStubs
            {
                public static void Pack(SoftPrompt.Cuda.IComputeDevice device) => device.Launch(device.GetKernel("axpy"), 1, 32, 0, null, 0);
            }
            """;
        var run = StubCompilation.Create(intruder, ("kernels/axpy.cu", Kernel));
        Assert.That(run.Errors.Select(e => e.Id), Has.Some.EqualTo("CS0260").Or.Some.EqualTo("CS0101"), "the generated class is not partial");
    }
}

using SoftPrompt.Cuda;
using SoftPrompt.Cuda.Emulation;
using SoftPrompt.Cuda.Kernels;
using SoftPrompt.Tests.Kernels;

namespace SoftPrompt.Tests.Emulation;

/// <summary>Every kernel has one generated launch stub whose parameters match the PTX entry and the emulator's kernel.</summary>
public sealed class KernelAbiTests
{
    private const string SamplePtx = """
        .version 7.8
        .target sm_80
        .address_size 64
        	// .globl	layer_norm
        .visible .entry layer_norm(
        	.param .u64 layer_norm_param_0,
        	.param .u64 .ptr .global .align 4 layer_norm_param_1,
        	.param .u32 layer_norm_param_2,
        	.param .f32 layer_norm_param_3,
        	.param .align 8 .b8 layer_norm_param_4[16]
        )
        {
        	ret;
        }
        .visible .entry no_args()
        {
        	ret;
        }
        """;

    private readonly record struct Pair(long A, long B);

    [Test]
    public void ParsesPtxEntriesAndTheirParameters()
    {
        var entries = KernelAbi.ParsePtx(SamplePtx);
        Assert.That(entries.Select(e => e.Name), Is.EqualTo(new[] { "layer_norm", "no_args" }));
        var p = entries[0].Parameters;
        Assert.That(p.Select(x => x.Size), Is.EqualTo(new[] { 8, 8, 4, 4, 16 }));
        Assert.That(p.Select(x => x.IsFloat), Is.EqualTo(new[] { false, false, false, true, false }));
        Assert.That(p[4].IsAggregate, Is.True);
        Assert.That(entries[1].Parameters, Is.Empty);
    }

    [Test]
    public void FindsEveryKindOfMismatch()
    {
        var entries = KernelAbi.ParsePtx(SamplePtx);
        LauncherSignature Sig(string kernel, params Type[] types) => new(kernel, types, "Test." + kernel);
        var good = new[] { Sig("layer_norm", typeof(DeviceSpan<float>), typeof(DeviceSpan<float>), typeof(int), typeof(float), typeof(Pair)), Sig("no_args") };
        Assert.That(KernelAbi.CheckPtx(entries, good), Is.Empty);

        Assert.That(KernelAbi.CheckPtx(entries, [good[1]]), Has.One.Contains("layer_norm").And.Contains("has no launch stub"));
        Assert.That(KernelAbi.CheckPtx(entries, [.. good, Sig("ghost")]), Has.One.Contains("ghost").And.Contains("not in the PTX"));
        Assert.That(KernelAbi.CheckPtx(entries, [.. good, Sig("no_args")]), Has.One.Contains("two launch stubs"));
        var shortList = Sig("layer_norm", typeof(DeviceSpan<float>), typeof(DeviceSpan<float>), typeof(int), typeof(float));
        Assert.That(KernelAbi.CheckPtx(entries, [shortList, good[1]]), Has.One.Contains("declares 4 parameters"));
        var wrongSize = Sig("layer_norm", typeof(DeviceSpan<float>), typeof(DeviceSpan<float>), typeof(long), typeof(float), typeof(Pair));
        Assert.That(KernelAbi.CheckPtx(entries, [wrongSize, good[1]]), Has.One.Contains("parameter 2").And.Contains("8 bytes"));
        var wrongClass = Sig("layer_norm", typeof(DeviceSpan<float>), typeof(DeviceSpan<float>), typeof(int), typeof(int), typeof(Pair));
        Assert.That(KernelAbi.CheckPtx(entries, [wrongClass, good[1]]), Has.One.Contains("parameter 3").And.Contains("floating point"));
        var swapped = Sig("layer_norm", typeof(DeviceSpan<float>), typeof(int), typeof(DeviceSpan<float>), typeof(float), typeof(Pair));
        Assert.That(KernelAbi.CheckPtx(entries, [swapped, good[1]]), Has.Count.EqualTo(2));
    }

    [Test]
    public void TheLaunchersAreTheGeneratedStubsPerKernelWithTheKernelsParameters()
    {
        var stubs = KernelAbi.FindLaunchers().ToDictionary(l => l.Kernel);
        Assert.That(stubs["rope_forward"].Parameters, Is.EqualTo(new[]
        {
            typeof(DeviceSpan<float>), typeof(DeviceSpan<float>), typeof(DeviceSpan<float>), typeof(int), typeof(int), typeof(int), typeof(int), typeof(float),
        }));
        Assert.That(stubs["rope_forward"].Launcher, Is.EqualTo("KernelStubs.rope_forward"));
        Assert.That(stubs.Keys, Does.Contain("attention_forward_hs64").And.Not.Contain("attention_forward"), "a family stub is no kernel of its own");
    }

    /// <summary>The product's kernel module (kernels/) and the tests' own (tests/kernels/), each with its stubs class.</summary>
    public enum Module { Product, Tests }

    private static string? Ptx(Module module) => module == Module.Product ? EmbeddedPtx.Load() : TestKernelModule.Ptx;

    private static EmulatorLibrary Emulator(Module module) => module == Module.Product ? EmulatorLibrary.Load() : TestKernelModule.LoadEmulator();

    private static IReadOnlyList<LauncherSignature> Launchers(Module module) =>
        module == Module.Product ? KernelAbi.FindLaunchers() : KernelAbi.FindLaunchers(typeof(TestKernelStubs));

    [Test]
    public void ThePtxModulesHoldNoKernelOfTheOther()
    {
        Assert.That(EmbeddedPtx.ResourceNames(), Is.EqualTo(new[] { EmbeddedPtx.ResourceName }), "one kernel module in the library");
        var product = KernelAbi.FindLaunchers().Select(l => l.Kernel);
        var tests = KernelAbi.FindLaunchers(typeof(TestKernelStubs)).Select(l => l.Kernel).ToList();
        Assert.That(tests, Does.Contain("selftest_mma").And.Not.Contain("selftest_block_sum"));
        Assert.That(product, Does.Contain("selftest_block_sum").And.Not.Contain("selftest_mma"), "test-only kernels stay out of the library");
    }

    [TestCase(Module.Product)]
    [TestCase(Module.Tests)]
    public void EmbeddedPtxEntriesMatchTheLaunchers(Module module)
    {
        string? ptx = Ptx(module);
        if (ptx is null) Assert.Ignore(EmbeddedPtx.NotBuiltMessage);
        var entries = KernelAbi.ParsePtx(ptx);
        Assert.That(entries, Is.Not.Empty);
        Assert.That(KernelAbi.CheckPtx(entries, Launchers(module)), Is.Empty);
    }

    [TestCase(Module.Product)]
    [TestCase(Module.Tests)]
    public void EmulatorKernelsMatchTheLaunchers(Module module)
    {
        if (!EmulatedDevice.IsAvailable(out string? reason)) Assert.Ignore(reason ?? EmulatorLibrary.NotBuiltMessage);
        var library = Emulator(module);
        Assert.That(library.Kernels, Is.Not.Empty);
        Assert.That(KernelAbi.CheckEmulator(library.Kernels.Select(k => (k.Name, k.ParameterSizes)), Launchers(module)), Is.Empty);
    }

    [TestCase(Module.Product)]
    [TestCase(Module.Tests)]
    public void EmulatorAndPtxHoldTheSameKernels(Module module)
    {
        string? ptx = Ptx(module);
        if (ptx is null) Assert.Ignore(EmbeddedPtx.NotBuiltMessage);
        if (!EmulatedDevice.IsAvailable(out string? reason)) Assert.Ignore(reason ?? EmulatorLibrary.NotBuiltMessage);
        var fromPtx = KernelAbi.ParsePtx(ptx).Select(e => (e.Name, Sizes: string.Join(",", e.Parameters.Select(p => p.Size)))).OrderBy(e => e.Name, StringComparer.Ordinal);
        var fromEmulator = Emulator(module).Kernels.Select(k => (k.Name, Sizes: string.Join(",", k.ParameterSizes))).OrderBy(e => e.Name, StringComparer.Ordinal);
        Assert.That(fromEmulator, Is.EqualTo(fromPtx));
    }
}

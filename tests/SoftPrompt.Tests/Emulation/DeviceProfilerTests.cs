using System.Diagnostics;
using SoftPrompt.Cuda;
using SoftPrompt.Cuda.Kernels;

namespace SoftPrompt.Tests.Emulation;

/// <summary>
/// Device profiling (`bench --profile` on device engines): while it is on, every launch, GEMM, copy and memset is
/// recorded under its label with its time; while it is off, nothing is.
/// </summary>
[TestFixture(DeviceKind.Emulated)]
[TestFixture(DeviceKind.Gpu, Category = "Gpu")]
public sealed class DeviceProfilerTests(DeviceKind kind)
{
    private const int BlockSumElements = 1000;
    private IComputeDevice device = null!;
    private DeviceBuffer<float> input = null!, sums = null!, a = null!, b = null!, c = null!;
    private DeviceBuffer<ushort> a16 = null!, b16 = null!, c16 = null!;
    private readonly float[] host = new float[64];

    [OneTimeSetUp]
    public void OpenDevice()
    {
        device = TestDevices.Open(kind);
        input = device.Upload(Enumerable.Range(0, BlockSumElements).Select(i => (float)(i % 7)).ToArray());
        sums = device.Allocate<float>(SelftestBlockSum.Blocks(BlockSumElements));
        a = device.Upload(Enumerable.Repeat(0.5f, 64).ToArray());
        b = device.Upload(Enumerable.Repeat(0.25f, 64).ToArray());
        c = device.Allocate<float>(128);
        a16 = device.Upload(Enumerable.Repeat((ushort)0x3f80, 128).ToArray()); // bf16 1.0
        b16 = device.Upload(Enumerable.Repeat((ushort)0x3f80, 128).ToArray());
        c16 = device.Allocate<ushort>(128);
    }

    [OneTimeTearDown]
    public void CloseDevice()
    {
        device?.StopProfiling();
        input?.Dispose();
        sums?.Dispose();
        a?.Dispose();
        b?.Dispose();
        c?.Dispose();
        a16?.Dispose();
        b16?.Dispose();
        c16?.Dispose();
        (device as IDisposable)?.Dispose();
    }

    [TearDown]
    public void StopProfiling() => device?.StopProfiling();

    /// <summary>3 block sums, 2 fp32 GEMMs 5×7×3 (B transposed), 1 batched bf16 GEMM 2 × 4×6×8 (A transposed), 1 bf16→bf16 GEMM 3×4×5, a memset, a copy each way.</summary>
    private void KnownSequence()
    {
        for (int i = 0; i < 3; i++) SelftestBlockSum.Launch(device, input.Span, sums.Span);
        for (int i = 0; i < 2; i++)
            device.Gemm(5, 7, 3, 1f, new GemmOperand(a.Span, 3), new GemmOperand(b.Span, 3, Transposed: true), 0f, new GemmOperand(c.Span, 7));
        device.GemmBf16(4, 6, 8, 1f, new Bf16GemmOperand(a16.Span, 4, Transposed: true, BatchStride: 32), new Bf16GemmOperand(b16.Span, 6, BatchStride: 48),
            0f, new GemmOperand(c.Span, 6, BatchStride: 24), batchCount: 2);
        device.GemmBf16(3, 4, 5, 1f, new Bf16GemmOperand(a16.Span, 5), new Bf16GemmOperand(b16.Span, 4), 0f, new Bf16GemmOperand(c16.Span, 4));
        device.Zero(c.Span);
        device.CopyToDevice<float>(host, c.Span.Slice(0, host.Length));
        device.CopyToHost(sums.Span.Slice(0, 1), host.AsSpan(0, 1));
    }

    [Test]
    public void AKnownSequenceGivesEachLabelItsCallsAndGemmFlops()
    {
        var profiler = device.StartProfiling();
        KnownSequence();
        var profile = profiler.Read();
        var rows = profile.Ops.ToDictionary(o => o.Label);

        Assert.That(rows.Keys, Is.EquivalentTo(new[]
        {
            "selftest_block_sum", "gemm fp32 5×7×3 (N,T)", "gemm bf16 4×6×8 (T,N) ×2 batched", "gemm bf16→bf16 3×4×5 (N,N)", "memset", "copy host→device", "copy device→host",
        }));
        Assert.That(rows["selftest_block_sum"].Calls, Is.EqualTo(3));
        Assert.That(rows["gemm fp32 5×7×3 (N,T)"].Calls, Is.EqualTo(2));
        Assert.That(rows["gemm fp32 5×7×3 (N,T)"].Flops, Is.EqualTo(2 * 2.0 * 5 * 7 * 3), "2·m·n·k per call");
        Assert.That(rows["gemm bf16 4×6×8 (T,N) ×2 batched"].Flops, Is.EqualTo(2.0 * 4 * 6 * 8 * 2), "2·m·n·k per batch entry");
        Assert.That(rows["gemm bf16→bf16 3×4×5 (N,N)"].Flops, Is.EqualTo(2.0 * 3 * 4 * 5));
        Assert.That(rows["memset"].Calls + rows["copy host→device"].Calls + rows["copy device→host"].Calls, Is.EqualTo(3));
        Assert.That(rows["selftest_block_sum"].Flops, Is.Zero);
        Assert.That(rows["selftest_block_sum"].Tflops, Is.Null, "TFLOP/s is for GEMMs");
        Assert.That(profile.Calls, Is.EqualTo(10));
        Assert.That(sums.Download()[0], Is.EqualTo(Enumerable.Range(0, 256).Sum(i => i % 7)), "a profiled launch still runs the kernel");
    }

    [Test]
    public void AGemmWithAnEpilogueIsItsOwnKindNamingItsArithmeticAndEpilogue()
    {
        using var bias16 = device.Upload(Enumerable.Repeat((ushort)0x3f80, 8).ToArray());
        using var aux16 = device.Allocate<ushort>(3 * 8);
        using var d16 = device.Allocate<ushort>(3 * 8);
        using var d = device.Allocate<float>(3 * 4);
        var profiler = device.StartProfiling();
        device.GemmEpilogue(3, 8, 5, 1f, new Bf16GemmOperand(a16.Span, 5), new Bf16GemmOperand(b16.Span, 8), 0f, default,
            new Bf16GemmOperand(d16.Span, 8), GemmEpilogue<ushort>.GeluSavingPreActivation(bias16.Span, aux16.Span, 8));
        device.GemmEpilogue(3, 4, 5, 1f, new GemmOperand(a.Span, 5), new GemmOperand(b.Span, 4), 1f, new GemmOperand(c.Span, 4),
            new GemmOperand(d.Span, 4), GemmEpilogue<float>.WithBias(input.Span.Slice(0, 4)));
        var rows = profiler.Read().Ops.ToDictionary(o => o.Label);
        Assert.That(rows.Keys, Is.EquivalentTo(new[] { "gemm bf16→bf16 +gelu_aux_bias 3×8×5 (N,N)", "gemm fp32 +bias 3×4×5 (N,N)" }));
        Assert.That(rows.Values.Select(r => r.Kind), Is.All.EqualTo(DeviceOpKind.GemmEpilogue));
        Assert.That(rows["gemm fp32 +bias 3×4×5 (N,N)"].Flops, Is.EqualTo(2.0 * 3 * 4 * 5), "2·m·n·k like any GEMM");
    }

    [Test]
    public void TimesAreNonNegativeAndFitInTheWallTimeAroundThem()
    {
        var profiler = device.StartProfiling();
        KnownSequence();
        profiler.Reset(); // a warm sequence: lazy kernel loads and cuBLAS set-up are not part of it
        var wall = Stopwatch.StartNew();
        KnownSequence();
        device.Synchronize();
        double wallMs = wall.Elapsed.TotalMilliseconds;
        var profile = profiler.Read();

        Assert.That(profile.Ops.Select(o => o.Milliseconds), Is.All.GreaterThanOrEqualTo(0));
        Assert.That(profile.OpMilliseconds, Is.GreaterThan(0).And.LessThanOrEqualTo(wallMs));
        Assert.That(profile.Ops.Select(o => o.Milliseconds), Is.Ordered.Descending, "the largest time first");
    }

    [Test]
    public void ReadAveragesOverStepsAndStartsAfresh()
    {
        var profiler = device.StartProfiling();
        KnownSequence();
        KnownSequence();
        var twoSteps = profiler.Read(steps: 2);
        Assert.That(twoSteps.Calls, Is.EqualTo(10), "calls per step");
        Assert.That(twoSteps.Steps, Is.EqualTo(2));
        Assert.That(profiler.Read().Ops, Is.Empty, "a read consumes what was recorded");
    }

    [Test]
    public void NothingIsRecordedWhileProfilingIsOff()
    {
        KnownSequence();
        var profiler = device.StartProfiling();
        Assert.That(profiler.Read().Ops, Is.Empty, "ops queued before profiling started");
        Assert.That(device.Profiler, Is.SameAs(profiler));
        KnownSequence();
        profiler.Reset();
        Assert.That(profiler.RecordedOps, Is.Zero, "Reset drops what was recorded");
        device.StopProfiling();
        Assert.That(device.Profiler, Is.Null);
        KnownSequence();
        Assert.That(profiler.RecordedOps, Is.Zero, "ops queued after profiling stopped");
        Assert.Throws<ObjectDisposedException>(() => profiler.Read(), "a stopped profiler has released its events");
    }

    [Test]
    public void AProfiledSequenceAllocatesNothingOnceWarm()
    {
        var profiler = device.StartProfiling();
        KnownSequence();
        profiler.Reset();
        long before = GC.GetAllocatedBytesForCurrentThread();
        KnownSequence();
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.That(allocated, Is.Zero, "recording an op must not allocate");
        Assert.That(profiler.RecordedOps, Is.EqualTo(10));
    }
}

/// <summary>The labels and FLOP counts of profiled ops, without a device.</summary>
public sealed class DeviceOpTests
{
    [Test]
    public void GemmLabelsSayKindShapeTransposesAndBatch()
    {
        Assert.That(DeviceOp.Gemm(DeviceOpKind.GemmBf16, 3200, 8192, 2048, false, true, 1).Label, Is.EqualTo("gemm bf16 3200×8192×2048 (N,T)"));
        Assert.That(DeviceOp.Gemm(DeviceOpKind.GemmTf32, 64, 64, 32, true, false, 12).Label, Is.EqualTo("gemm tf32 64×64×32 (T,N) ×12 batched"));
        Assert.That(DeviceOp.Gemm(DeviceOpKind.GemmBf16ToBf16, 1, 2, 3, false, false, 1).Label, Is.EqualTo("gemm bf16→bf16 1×2×3 (N,N)"));
        Assert.That(DeviceOp.Gemm(DeviceOpKind.GemmFp32, 1, 2, 3, false, false, 1).Label, Is.EqualTo("gemm fp32 1×2×3 (N,N)"));
        Assert.That(DeviceOp.Kernel("rmsnorm_forward").Label, Is.EqualTo("rmsnorm_forward"));
        Assert.That(DeviceOp.Transfer(DeviceOpKind.CopyDeviceToDevice).Label, Is.EqualTo("copy device→device"));
    }

    [Test]
    public void AGemmCallIsTwoFlopsPerMultiplyAdd()
    {
        Assert.That(DeviceOp.Gemm(DeviceOpKind.GemmBf16, 3200, 8192, 2048, false, true, 3).Flops, Is.EqualTo(2.0 * 3200 * 8192 * 2048 * 3));
        Assert.That(DeviceOp.Kernel("x").Flops, Is.Zero);
        Assert.That(new DeviceOpTime("g", DeviceOpKind.GemmBf16, 1, Milliseconds: 2, Flops: 4e12).Tflops, Is.EqualTo(2000).Within(1e-9));
    }
}

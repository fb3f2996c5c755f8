using System.Diagnostics;
using SoftPrompt.Cuda;
using SoftPrompt.Cuda.Emulation;
using SoftPrompt.Cuda.Kernels;
using SoftPrompt.Tests.Kernels;

namespace SoftPrompt.Tests.Emulation;

/// <summary>What only the emulator does: turn broken kernels into errors, and stop out-of-bounds accesses (AddressSanitizer).</summary>
public sealed class EmulatorTests
{
    private const string AsanChildVariable = "SOFTPROMPT_TEST_ASAN_CHILD";
    private EmulatedDevice device = null!;

    [OneTimeSetUp]
    public void OpenDevice() => device = TestDevices.OpenEmulated();

    [OneTimeTearDown]
    public void CloseDevice() => device?.Dispose();

    [Test]
    public void DescribesItself()
    {
        Assert.That(device.Kind, Is.EqualTo("cuda-emulated"));
        Assert.That(device.Description, Does.Contain("emulator").And.Contain("kernels"));
        TestContext.Out.WriteLine($"{device.Description} — {device.Library.Path}");
    }

    [Test]
    public void AnAssertInAKernelBecomesAnExceptionNamingTheKernelAndLine()
    {
        int[] x = [.. Enumerable.Range(0, 100)];
        x[70] = -3;
        using var input = device.Upload(x);
        var e = Assert.Throws<CudaException>(() => SelftestAssertNonneg.Launch(device, input.Span))!;
        Assert.That(e.Message, Does.Contain("selftest_assert_nonneg").And.Contain("assertion `x[i] >= 0` failed")
            .And.Contain("selftest.cu:").And.Contain("block (2,0,0) thread (6,0,0)"));
        // The device stays usable after a failed launch.
        x[70] = 3;
        input.CopyFrom(x);
        SelftestAssertNonneg.Launch(device, input.Span);
    }

    [Test]
    public void ADivergentBarrierIsReportedAsADeadlock()
    {
        using var output = device.Allocate<uint>(64);
        var e = Assert.Throws<CudaException>(() => SelftestDivergentBarrier.Launch(device, output.Span))!;
        Assert.That(e.Message, Does.Contain("deadlock").And.Contain("selftest_divergent_barrier").And.Contain("__syncthreads"));
    }

    [Test]
    public void ATileReadBeforeItsCpAsyncWaitIsStale()
    {
        using var source = device.Upload(Enumerable.Range(0, 256).Select(i => (float)i).ToArray());
        using var output = device.Allocate<float>(256);
        SelftestCpAsyncNoWait.Launch(device, source.Span, output.Span);
        Assert.That(output.Download().Select(BitConverter.SingleToUInt32Bits), Is.All.EqualTo(0xffffffffu),
            "the copies land only at a wait, so the missing one leaves shared memory's 0xFF fill");
    }

    [Test]
    public void AMissingBarrierHidesInOneThreadOrderAndShowsInTheOther()
    {
        using var output = device.Allocate<int>(64);
        bool reverse = device.ReverseThreadOrder;
        try
        {
            device.ReverseThreadOrder = false;
            SelftestMissingBarrier.Launch(device, output.Span);
            Assert.That(output.Download(), Is.All.EqualTo(42), "forward: thread 0 writes before the others read, as if the barrier were there");
            device.ReverseThreadOrder = true;
            Assert.That(device.ReverseThreadOrder, Is.True);
            SelftestMissingBarrier.Launch(device, output.Span);
            var values = output.Download();
            Assert.That(values[0], Is.EqualTo(42));
            Assert.That(values[1..], Is.All.EqualTo(-1), "reverse: threads 63 … 1 read before thread 0 writes, the 0xFF fill");
        }
        finally
        {
            device.ReverseThreadOrder = reverse;
        }
    }

    [Test]
    public void AnMmaReachedByPartOfTheWarpIsAnError()
    {
        using var output = device.Allocate<float>(64);
        var e = Assert.Throws<CudaException>(() => SelftestMmaHalfWarp.Launch(device, output.Span))!;
        Assert.That(e.Message, Does.Contain("mma.sync needs all 32 lanes").And.Contain("selftest_mma_half_warp").And.Contain("selftest.cu:"));
    }

    [Test]
    public unsafe void MalformedLaunchesAreRejected()
    {
        using var x = device.Allocate<float>(10);
        ulong pointer = x.Span.Address;
        int n = 10;
        void** args = stackalloc void*[3];
        args[0] = &pointer;
        args[1] = &pointer;
        args[2] = &n;
        var kernel = device.GetKernel(SelftestBlockSum.Name);
        Assert.That(() => device.Launch(kernel, 1, 256, 0, args, 2), Throws.TypeOf<CudaException>().With.Message.Contains("takes 3 arguments"));
        Assert.That(() => device.Launch(kernel, 1, 2048, 0, args, 3), Throws.TypeOf<CudaException>().With.Message.Contains("invalid block"));
        Assert.That(() => device.Launch(kernel, 0, 256, 0, args, 3), Throws.TypeOf<CudaException>().With.Message.Contains("invalid grid"));
        Assert.That(() => device.GetKernel("no_such_kernel"), Throws.TypeOf<CudaException>().With.Message.Contains("no_such_kernel"));
    }

    [Test]
    public void FreshAllocationsReadAsNaNAndFreesAreChecked()
    {
        var buffer = device.Allocate<float>(5);
        Assert.That(buffer.Download(), Is.All.NaN);
        ulong address = buffer.Address;
        long before = device.AllocatedBytes;
        buffer.Dispose();
        Assert.That(device.AllocatedBytes, Is.EqualTo(before - 20));
        Assert.Throws<InvalidOperationException>(() => device.Free(address));
    }

    [Test]
    public void NullReferencesStillWorkInTheTestHost()
    {
        // The .NET runtime turns SIGSEGV at a null dereference into NullReferenceException; under the ASan
        // preload (./build.sh test) this proves ASan leaves that signal to .NET.
        object? nothing = null;
        Assert.Throws<NullReferenceException>(() => nothing!.GetHashCode());
    }

    /// <summary>
    /// Runs <see cref="AsanChildWritesOutOfBounds"/> in a child test process (the ASan report aborts the process)
    /// and checks that AddressSanitizer stopped it at the kernel's source line.
    /// </summary>
    [Category("Slow")]
    [Test]
    public void AddressSanitizerStopsAnOutOfBoundsWriteInAKernel()
    {
        if (!device.IsAddressSanitized)
            Assert.Ignore("the AddressSanitizer emulator is not loaded (run under ./build.sh test, which preloads libasan)");
        var start = new ProcessStartInfo(Environment.ProcessPath!)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (string arg in new[] { "--filter", $"FullyQualifiedName~{nameof(EmulatorTests)}.{nameof(AsanChildWritesOutOfBounds)}", "--progress", "off" })
            start.ArgumentList.Add(arg);
        start.Environment[AsanChildVariable] = "1";
        start.Environment[EmulatorLibrary.PathVariable] = device.Library.Path;
        using var child = Process.Start(start)!;
        var stderr = child.StandardError.ReadToEndAsync();
        string stdout = child.StandardOutput.ReadToEnd();
        if (!child.WaitForExit(120_000)) { child.Kill(); Assert.Fail("the child test process did not finish in 2 minutes"); }
        string output = stdout + stderr.Result;
        Assert.That(child.ExitCode, Is.Not.Zero, output);
        Assert.That(output, Does.Contain("AddressSanitizer: heap-buffer-overflow").And.Contain("selftest_oob_write").And.Contain("selftest.cu:"), output);
    }

    [Test]
    public void AsanChildWritesOutOfBounds()
    {
        if (Environment.GetEnvironmentVariable(AsanChildVariable) != "1")
            Assert.Ignore($"runs only as the child process of {nameof(AddressSanitizerStopsAnOutOfBoundsWriteInAKernel)}");
        using var output = device.Allocate<float>(1000);
        SelftestOobWrite.Launch(device, output.Span);
        Assert.Fail("AddressSanitizer did not stop the out-of-bounds write");
    }
}

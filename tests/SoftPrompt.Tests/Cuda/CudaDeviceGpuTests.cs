using SoftPrompt.Cuda;

namespace SoftPrompt.Tests.Cuda;

/// <summary>The real GPU: memory, copies, launches, module errors. Skipped where no CUDA driver or GPU is present.</summary>
[Category("Gpu")]
public sealed unsafe class CudaDeviceGpuTests
{
    private static CudaDevice Gpu => GpuTestEnvironment.RequireCuda();

    [Test]
    public void OpensTheDeviceAndDescribesIt()
    {
        var gpu = Gpu;
        Assert.That(gpu.Kind, Is.EqualTo("cuda"));
        Assert.That(gpu.Name, Is.Not.Empty);
        Assert.That(gpu.ComputeCapability.Major, Is.GreaterThanOrEqualTo(5));
        Assert.That(gpu.Info.MultiprocessorCount, Is.GreaterThan(0));
        Assert.That(gpu.Info.MaxSharedMemoryPerBlockOptin, Is.GreaterThanOrEqualTo(48 * 1024));
        Assert.That(gpu.DriverVersion, Is.GreaterThanOrEqualTo(11000));
        Assert.That(gpu.CublasVersion, Is.GreaterThanOrEqualTo(110000));
        Assert.That(gpu.CublasLibrary, Does.Contain("libcublas.so."));
        Assert.That(gpu.Description, Does.Contain(gpu.Name).And.Contain("cuBLAS"));
        var memory = gpu.MemoryInfo;
        Assert.That(memory.FreeBytes, Is.GreaterThan(0).And.LessThanOrEqualTo(memory.TotalBytes));
        TestContext.Out.WriteLine($"{gpu.Description}; cuBLAS from {gpu.CublasLibrary}; {memory}");
    }

    [TestCase(1)]
    [TestCase(1000)]
    [TestCase(1_000_003)]
    public void RoundTripsHostToDeviceToHost(int length)
    {
        var gpu = Gpu;
        var values = GemmReference.Random(new Random(length), length);
        using var buffer = gpu.Allocate<float>(length);
        buffer.CopyFrom(values);
        var back = new float[length];
        buffer.CopyTo(back);
        Assert.That(back, Is.EqualTo(values));

        var ints = Enumerable.Range(-length / 2, length).ToArray();
        using var intBuffer = gpu.Allocate<int>(length);
        intBuffer.CopyFrom(ints);
        var intsBack = new int[length];
        intBuffer.CopyTo(intsBack);
        Assert.That(intsBack, Is.EqualTo(ints));
    }

    [Test]
    public void PageableSourceCanBeReusedRightAfterTheUpload()
    {
        // The upload is queued on the stream; the driver must have staged the source before returning.
        var gpu = Gpu;
        const int length = 16 << 20;
        var values = new float[length];
        for (int i = 0; i < length; i++) values[i] = i;
        using var buffer = gpu.Allocate<float>(length);
        buffer.CopyFrom(values);
        Array.Fill(values, -1f);
        var back = new float[length];
        buffer.CopyTo(back);
        for (int i = 0; i < length; i += 4099) Assert.That(back[i], Is.EqualTo((float)i), $"element {i}");
        Assert.That(back[^1], Is.EqualTo((float)(length - 1)));
    }

    [Test]
    public void ZeroClearsExactlyTheSpan()
    {
        var gpu = Gpu;
        // Bytes at odd offsets and lengths take the 8-bit memset; floats the 32-bit one.
        using var bytes = gpu.Allocate<byte>(37);
        bytes.CopyFrom(Enumerable.Repeat((byte)0xAB, 37).ToArray());
        gpu.Zero(bytes.Slice(3, 11));
        var byteBack = new byte[37];
        bytes.CopyTo(byteBack);
        for (int i = 0; i < 37; i++) Assert.That(byteBack[i], Is.EqualTo(i is >= 3 and < 14 ? 0 : 0xAB), $"byte {i}");

        using var floats = gpu.Allocate<float>(100);
        floats.CopyFrom(Enumerable.Repeat(2.5f, 100).ToArray());
        gpu.Zero(floats.Slice(10, 80));
        var floatBack = new float[100];
        floats.CopyTo(floatBack);
        for (int i = 0; i < 100; i++) Assert.That(floatBack[i], Is.EqualTo(i is >= 10 and < 90 ? 0f : 2.5f), $"float {i}");
    }

    [Test]
    public void CopiesBetweenDeviceSlices()
    {
        var gpu = Gpu;
        var values = Enumerable.Range(0, 64).Select(i => (float)i).ToArray();
        using var source = gpu.Allocate<float>(64);
        using var destination = gpu.Allocate<float>(64);
        source.CopyFrom(values);
        gpu.Zero(destination.Span);
        gpu.CopyDeviceToDevice(source.Slice(8, 16), destination.Slice(40, 16));
        // Within one buffer, non-overlapping.
        gpu.CopyDeviceToDevice(source.Slice(0, 8), source.Slice(56, 8));
        var back = new float[64];
        destination.CopyTo(back);
        for (int i = 0; i < 64; i++) Assert.That(back[i], Is.EqualTo(i is >= 40 and < 56 ? i - 32 : 0f), $"destination {i}");
        var partial = new float[8];
        gpu.CopyToHost(source.Slice(56, 8), partial);
        Assert.That(partial, Is.EqualTo(values[..8]));
    }

    [Test]
    public void BoundsAreCheckedBeforeAnythingIsQueued()
    {
        var gpu = Gpu;
        using var buffer = gpu.Allocate<float>(10);
        Assert.Throws<ArgumentException>(() => buffer.CopyFrom(new float[11]));
        Assert.Throws<ArgumentException>(() => buffer.CopyTo(new float[11]));
        Assert.Throws<ArgumentOutOfRangeException>(() => buffer.Slice(5, 6));
        Assert.Throws<ArgumentOutOfRangeException>(() => buffer.Slice(-1, 2));
        Assert.Throws<ArgumentException>(() => gpu.CopyToDevice<float>(new float[3], buffer.Slice(0, 4)));
        Assert.Throws<ArgumentException>(() => gpu.CopyToHost(buffer.Slice(0, 4), new float[3]));
        Assert.Throws<ArgumentException>(() => gpu.CopyDeviceToDevice(buffer.Slice(0, 4), buffer.Slice(0, 5)));
        Assert.Throws<ArgumentException>(() => gpu.CopyDeviceToDevice(buffer.Slice(0, 4), buffer.Slice(2, 4)));

        using var empty = gpu.Allocate<float>(0);
        Assert.That(empty.Length, Is.Zero);
        empty.CopyFrom([]);

        var disposed = gpu.Allocate<float>(4);
        disposed.Dispose();
        disposed.Dispose();
        Assert.Throws<ObjectDisposedException>(() => _ = disposed.Address);
    }

    [Test]
    public void PinnedBuffersCopyAsynchronously()
    {
        var gpu = Gpu;
        using var pinned = gpu.AllocatePinned<float>(1000);
        using var buffer = gpu.Allocate<float>(500);
        for (int i = 0; i < 1000; i++) pinned.Span[i] = i;
        gpu.CopyToDeviceAsync(pinned, 250, buffer.Span);
        gpu.CopyToHostAsync(buffer.Span, pinned, 0);
        gpu.Synchronize();
        for (int i = 0; i < 500; i++) Assert.That(pinned.Span[i], Is.EqualTo((float)(i + 250)));
        Assert.Throws<ArgumentOutOfRangeException>(() => gpu.CopyToDeviceAsync(pinned, 600, buffer.Span));
    }

    [Test]
    public void LaunchesAKernelWithStackAllocatedArguments()
    {
        var gpu = Gpu;
        using var module = gpu.LoadModule(TestPtx.Module, "test PTX");
        var kernel = module.GetFunction("add_scalar");
        Assert.That(module.GetFunction("add_scalar"), Is.SameAs(kernel));
        Assert.That(kernel.MaxThreadsPerBlock, Is.GreaterThanOrEqualTo(256));
        var attributes = module.GetAttributes(kernel);
        Assert.That(attributes.Registers, Is.GreaterThan(0));
        // Both are compute capabilities ×10: the PTX's .target and the SASS the JIT produced for this GPU.
        Assert.That(attributes.PtxVersion, Is.EqualTo(52));
        Assert.That(attributes.BinaryVersion, Is.EqualTo(gpu.ComputeCapability.Major * 10 + gpu.ComputeCapability.Minor));

        const int n = 1000;
        var values = GemmReference.Random(new Random(3), n);
        using var x = gpu.Allocate<float>(n + 24);
        gpu.Zero(x.Span);
        x.CopyFrom(values);
        ulong address = x.Address;
        float v = 1.5f;
        uint count = n;
        void** args = stackalloc void*[3];
        args[0] = &address;
        args[1] = &v;
        args[2] = &count;
        gpu.Launch(kernel, (n + 255) / 256, 256, 0, args, 3);
        gpu.Launch(kernel, (n + 127) / 128, 128, 0, args, 3);
        var back = new float[n + 24];
        x.CopyTo(back);
        for (int i = 0; i < n; i++) Assert.That(back[i], Is.EqualTo(values[i] + 3f).Within(1e-6f), $"element {i}");
        for (int i = n; i < n + 24; i++) Assert.That(back[i], Is.Zero, $"guard element {i}");
    }

    [Test]
    public void LaunchesAndGemmsAllocateNothingOnTheManagedHeap()
    {
        var gpu = Gpu;
        using var module = gpu.LoadModule(TestPtx.Module, "test PTX");
        var kernel = module.GetFunction("add_scalar");
        const int n = 4096;
        using var x = gpu.Allocate<float>(n);
        gpu.Zero(x.Span);
        ulong address = x.Address;
        float v = 1f;
        uint count = n;
        void** args = stackalloc void*[3];
        args[0] = &address;
        args[1] = &v;
        args[2] = &count;
        var a = new GemmOperand(x.Slice(0, 1024), 32);
        var c = new GemmOperand(x.Slice(2048, 1024), 32);
        void Step()
        {
            gpu.Launch(kernel, n / 256, 256, 0, args, 3);
            gpu.Gemm(32, 32, 32, 1, a, a, 0, c);
        }
        for (int i = 0; i < 200; i++) Step();
        gpu.Synchronize();

        const int steps = 2000;
        long before = GC.GetAllocatedBytesForCurrentThread();
        long started = System.Diagnostics.Stopwatch.GetTimestamp();
        for (int i = 0; i < steps; i++) Step();
        double hostMicroseconds = System.Diagnostics.Stopwatch.GetElapsedTime(started).TotalMicroseconds / steps;
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        gpu.Synchronize();
        Assert.That(allocated, Is.Zero);
        TestContext.Out.WriteLine($"host time per launch + 32³ sgemm: {hostMicroseconds:F2} µs");
    }

    [Test]
    public void RaisesTheDynamicSharedMemoryLimitPastFortyEightKiB()
    {
        var gpu = Gpu;
        using var module = gpu.LoadModule(TestPtx.Module, "test PTX");
        var kernel = module.GetFunction("reverse_blocks");
        const int block = 256, blocks = 5;
        var values = Enumerable.Range(0, block * blocks).Select(i => (float)i).ToArray();
        using var x = gpu.Allocate<float>(values.Length);
        x.CopyFrom(values);
        ulong address = x.Address;
        void** args = stackalloc void*[1];
        args[0] = &address;
        // 64 KiB is more than the kernel needs but more than a launch may take without opting in.
        gpu.Launch(kernel, blocks, block, 64 * 1024, args, 1);
        gpu.Launch(kernel, blocks, block, 64 * 1024, args, 1);
        gpu.Launch(kernel, blocks, block, 100 * 1024, args, 1);
        var back = new float[values.Length];
        x.CopyTo(back);
        for (int b = 0; b < blocks; b++)
        for (int t = 0; t < block; t++)
            Assert.That(back[b * block + t], Is.EqualTo(values[b * block + block - 1 - t]), $"block {b} thread {t}");

        var tooMuch = (uint)gpu.Info.MaxSharedMemoryPerBlockOptin + 1024;
        var e = Assert.Throws<CudaException>(() => gpu.Launch(kernel, blocks, block, tooMuch, args, 1));
        Assert.That(e!.Message, Does.Contain("allows at most"));
    }

    [Test]
    public void RejectsLaunchShapesTheKernelCannotRun()
    {
        var gpu = Gpu;
        using var module = gpu.LoadModule(TestPtx.Module, "test PTX");
        var kernel = module.GetFunction("add_scalar");
        void** args = stackalloc void*[3];
        var e = Assert.Throws<CudaException>(() => gpu.Launch(kernel, 1, new Dim3(1024, 2), 0, args, 3));
        Assert.That(e!.Message, Does.Contain("2048 threads").And.Contain("threads per block"));
        Assert.Throws<CudaException>(() => gpu.Launch(kernel, 0, 32, 0, args, 3));
        Assert.Throws<ArgumentException>(() => gpu.Launch(kernel, 1, 32, 0, null, 3));
    }

    [Test]
    public void ModuleErrorsNameTheKernelAndCarryTheJitLog()
    {
        var gpu = Gpu;
        var e = Assert.Throws<CudaException>(() => gpu.LoadModule(TestPtx.Broken, "broken test PTX"));
        Assert.That(e!.Message, Does.StartWith("cuModuleLoadDataEx(broken test PTX, "));
        Assert.That(e.Message, Does.Contain("CUDA_ERROR_INVALID_PTX").And.Contain("JIT error log:").And.Contain("r_undeclared"));
        TestContext.Out.WriteLine(e.Message);

        using var module = gpu.LoadModule(TestPtx.Module);
        var missing = Assert.Throws<CudaException>(() => module.GetFunction("no_such_kernel"));
        Assert.That(missing!.Message, Does.Contain("'no_such_kernel'").And.Contain("extern \"C\""));

        // The shared test device was opened without kernels.
        var notBuilt = Assert.Throws<CudaException>(() => gpu.GetKernel("add_scalar"));
        Assert.That(notBuilt!.Message, Is.EqualTo(CudaDevice.KernelsNotBuiltMessage));
    }

    [Test]
    public void OutOfMemorySaysHowMuchWasAskedAndIsFree()
    {
        var gpu = Gpu;
        var e = Assert.Throws<CudaException>(() => gpu.Allocate<float>(1L << 48));
        Assert.That(e!.Message, Does.StartWith($"cuMemAlloc_v2({4L << 48} bytes) failed: CUDA_ERROR_OUT_OF_MEMORY (out of memory) — "));
        Assert.That(e.Message, Does.Contain("MiB free of").And.Contain("`TrainOptions.BatchSize`"));
        // The device is still usable.
        using var small = gpu.Allocate<float>(4);
        small.CopyFrom([1, 2, 3, 4]);
    }

    [Test]
    public void EventsTimeAndOrderStreamWork()
    {
        var gpu = Gpu;
        const int n = 1024;
        using var a = gpu.Allocate<float>(n * n);
        using var c = gpu.Allocate<float>(n * n);
        gpu.Zero(a.Span);
        // Warm up: the first GEMM of a shape pays cuBLAS's kernel selection and loading.
        gpu.Gemm(n, n, n, 1, new GemmOperand(a.Span, n), new GemmOperand(a.Span, n), 0, new GemmOperand(c.Span, n));
        using var timer = gpu.CreateTimer();
        timer.Start();
        for (int i = 0; i < 4; i++)
            gpu.Gemm(n, n, n, 1, new GemmOperand(a.Span, n), new GemmOperand(a.Span, n), 0, new GemmOperand(c.Span, n));
        float ms = timer.Stop();
        Assert.That(ms, Is.GreaterThan(0f).And.LessThan(10_000f));
        TestContext.Out.WriteLine($"4 × sgemm {n}³: {ms:F3} ms ({4.0 * 2 * n * n * n / (ms * 1e-3) / 1e12:F1} TFLOP/s)");

        using var marker = gpu.CreateEvent(timing: false);
        gpu.Zero(c.Span);
        marker.Record();
        marker.Synchronize();
        using var recorded = gpu.CreateEvent();
        recorded.Record();
        recorded.Synchronize();
        Assert.Throws<CudaException>(() => CudaEvent.ElapsedMilliseconds(marker, recorded));
    }

    [Test]
    public void DisposeReleasesEverythingAndLaterCallsSayDisposed()
    {
        GpuTestEnvironment.RequireCuda();
        var device = CudaDevice.Open(0, () => TestPtx.Module);
        var buffer = device.Allocate<float>(1024);
        var kernel = device.GetKernel("add_scalar");
        Assert.That(kernel.Name, Is.EqualTo("add_scalar"));
        var evt = device.CreateEvent();
        var pinned = device.AllocatePinned<int>(16);
        evt.Record();
        device.Dispose();
        device.Dispose();
        // Left-over owners may still be disposed afterwards without errors.
        buffer.Dispose();
        evt.Dispose();
        pinned.Dispose();
        Assert.Throws<ObjectDisposedException>(() => device.Allocate<float>(1));
        Assert.Throws<ObjectDisposedException>(() => device.Synchronize());
        Assert.Throws<ObjectDisposedException>(() => device.GetKernel("add_scalar"));

        // The shared device (same primary context) keeps working.
        using var still = Gpu.Allocate<float>(2);
        still.CopyFrom([1, 2]);
        var back = new float[2];
        still.CopyTo(back);
        Assert.That(back, Is.EqualTo(new[] { 1f, 2f }));
    }

    [Test]
    public void DoctorReportsTheGpu()
    {
        GpuTestEnvironment.RequireCuda();
        var report = CudaDoctor.Run(() => TestPtx.Module, [d => new DoctorCheck("launch", DoctorStatus.Ok, d.Name)]);
        TestContext.Out.WriteLine(report.ToString());
        Assert.That(report.CudaUsable, Is.True);
        Assert.That(report.Checks, Has.None.Matches<DoctorCheck>(c => c.Status == DoctorStatus.Failed));
        Assert.That(report.Checks.Select(c => c.Name), Does.Contain("GPU 0").And.Contain("cuBLAS").And.Contain("kernel module").And.Contain("launch"));
    }
}

using SoftPrompt.Cuda;
using SoftPrompt.Cuda.Kernels;
using SoftPrompt.Tests.Emulation;

namespace SoftPrompt.Tests.Kernels;

/// <summary>
/// The T5 launchers allocate nothing on the managed heap (arguments on the stack, error messages built only on
/// failure), so a CUDA engine step that uses them stays allocation-free.
/// </summary>
[TestFixture(DeviceKind.Emulated)]
[TestFixture(DeviceKind.Gpu, Category = "Gpu")]
public sealed class T5KernelAllocationTests(DeviceKind kind) : KernelTestBase(kind)
{
    [Test]
    public void LaunchersAllocateNothing()
    {
        const int batch = 2, sequence = 5, heads = 2, headSize = 8, a = heads * headSize, channels = a;
        using var buffer = Put(RandomFloats(16 * 1024, 1, -1f, 1f));
        using var rstd = Zeros<float>(batch * sequence);
        using var dx = Zeros<float>(batch * sequence * channels);
        using var lse = Zeros<float>(batch * heads * sequence);
        using var scratch = Zeros<float>(batch * heads * sequence);
        using var buckets = Put(new int[2 * sequence - 1]);
        using var lengths = Put(new[] { sequence, 2 });
        var s = buffer.Span;
        DeviceSpan<float> Part(int i) => s.Slice(i * 1024, 1024);

        void Step()
        {
            int rows = batch * sequence;
            RmsNormForward.Launch(Device, Part(0), rstd.Span, Part(1), Part(2), rows, channels, 1e-6f);
            RmsNormBackward.Launch(Device, dx.Span, Part(0), Part(1), Part(2), rstd.Span, rows, channels);
            ReluForward.Launch(Device, Part(3), Part(1));
            ReluBackward.Launch(Device, Part(4), Part(3), Part(1));
            GatedGeluForward.Launch(Device, Part(5), Part(1), Part(2));
            GatedGeluBackward.Launch(Device, Part(6), Part(7), Part(5), Part(1), Part(2));
            // Packed qkv in Part(8) (stride 3A), out in Part(9).
            var qkv = Part(8);
            AttentionForward.Launch(Device, Part(9), a, lse.Span, qkv, 3 * a, qkv.Slice(a), 3 * a, qkv.Slice(2 * a), 3 * a,
                Part(10).Slice(0, 32 * heads), buckets.Span, lengths.Span, batch, sequence, sequence, heads, headSize, causal: false, scale: 1f);
            AttentionBackward.Launch(Device, Part(11), a, Part(12), a, Part(13), a, Part(14), a, qkv, 3 * a, qkv.Slice(a), 3 * a, qkv.Slice(2 * a), 3 * a,
                Part(9), a, lse.Span, scratch.Span, Part(10).Slice(0, 32 * heads), buckets.Span, lengths.Span, batch, sequence, sequence, heads, headSize,
                causal: false, scale: 1f);
        }

        Step();
        Step();
        Device.Synchronize();
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 3; i++) Step();
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Device.Synchronize();
        Assert.That(allocated, Is.Zero, "bytes allocated by three rounds of T5 launches");
    }
}

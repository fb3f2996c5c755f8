using System.Runtime.InteropServices;
using SoftPrompt.Cuda;
using SoftPrompt.Tests.Emulation;

namespace SoftPrompt.Tests.Kernels;

/// <summary>
/// Base of the kernel-vs-CPU-op fixtures: each derived fixture is declared for <see cref="DeviceKind.Emulated"/> and,
/// as Category "Gpu", for <see cref="DeviceKind.Gpu"/> (skipped without a GPU), so the same cases run on both.
/// Buffers can be placed at an element offset: offset 1 makes every row start misaligned for float4, which sends
/// the kernels down their scalar paths.
/// </summary>
public abstract class KernelTestBase(DeviceKind kind)
{
    protected IComputeDevice Device { get; private set; } = null!;

    [OneTimeSetUp]
    public void OpenDevice() => Device = TestDevices.Open(kind);

    [OneTimeTearDown]
    public void CloseDevice() => (Device as IDisposable)?.Dispose();

    /// <summary>A device allocation holding an array at an element offset; <see cref="Span"/> covers exactly the array.</summary>
    protected sealed class DeviceArray<T>(IComputeDevice device, DeviceBuffer<T> buffer, DeviceSpan<T> span) : IDisposable where T : unmanaged
    {
        public DeviceSpan<T> Span { get; } = span;

        public T[] Read()
        {
            var data = new T[Span.Length];
            device.CopyToHost(Span, data);
            return data;
        }

        public void Write(T[] data) => device.CopyToDevice<T>(data, Span);

        public void Dispose() => buffer.Dispose();
    }

    /// <summary>Copies <paramref name="data"/> to the device at element <paramref name="offset"/> of a fresh, zeroed buffer.</summary>
    protected DeviceArray<T> Put<T>(T[] data, int offset = 0) where T : unmanaged
    {
        var buffer = Device.Allocate<T>(Math.Max(1, offset + data.Length));
        Device.Zero(buffer.Span);
        var span = buffer.Slice(offset, data.Length);
        if (data.Length > 0) Device.CopyToDevice<T>(data, span);
        return new DeviceArray<T>(Device, buffer, span);
    }

    /// <summary>A zeroed device array of <paramref name="length"/> elements at element <paramref name="offset"/>.</summary>
    protected DeviceArray<T> Zeros<T>(int length, int offset = 0) where T : unmanaged => Put(new T[length], offset);

    protected static float[] RandomFloats(int n, int seed, float low = -1f, float high = 1f)
    {
        var rng = new Random(seed);
        var x = new float[n];
        for (int i = 0; i < n; i++) x[i] = low + (high - low) * rng.NextSingle();
        return x;
    }

    protected static int[] RandomInts(int n, int seed, int bound)
    {
        var rng = new Random(seed);
        var x = new int[n];
        for (int i = 0; i < n; i++) x[i] = rng.Next(bound);
        return x;
    }

    /// <summary>Every |actual − expected| ≤ absolute + relative·|expected|; the message names the first offender.</summary>
    protected static void AssertClose(ReadOnlySpan<float> actual, ReadOnlySpan<float> expected, double relative, double absolute, string what)
    {
        Assert.That(actual.Length, Is.EqualTo(expected.Length), $"{what}: length");
        int bad = 0, first = -1;
        double worst = 0;
        for (int i = 0; i < actual.Length; i++)
        {
            double a = actual[i], e = expected[i], error = Math.Abs(a - e), allowed = absolute + relative * Math.Abs(e);
            if (error <= allowed && !double.IsNaN(a)) continue;
            if (first < 0) first = i;
            bad++;
            worst = Math.Max(worst, error / Math.Max(Math.Abs(e), 1e-30));
        }
        if (bad > 0)
            Assert.Fail($"{what}: {bad} of {actual.Length} values differ; first at [{first}]: {actual[first]:R} vs expected {expected[first]:R} (worst relative error {worst:G3}).");
    }

    /// <summary>Bit-for-bit equality (distinguishes −0 from +0 and compares NaN payloads).</summary>
    protected static void AssertBitEqual(ReadOnlySpan<float> actual, ReadOnlySpan<float> expected, string what)
    {
        Assert.That(actual.Length, Is.EqualTo(expected.Length), $"{what}: length");
        var a = MemoryMarshal.Cast<float, int>(actual);
        var e = MemoryMarshal.Cast<float, int>(expected);
        for (int i = 0; i < a.Length; i++)
            if (a[i] != e[i]) Assert.Fail($"{what}: first difference at [{i}]: {actual[i]:R} (0x{a[i]:x8}) vs expected {expected[i]:R} (0x{e[i]:x8}).");
    }
}

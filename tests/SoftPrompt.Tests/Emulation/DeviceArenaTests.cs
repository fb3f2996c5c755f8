using SoftPrompt.Cuda;

namespace SoftPrompt.Tests.Emulation;

/// <summary>The arena builder: one declaration sizes and carves; a measured arena is laid out like an allocated one.</summary>
public sealed class DeviceArenaTests
{
    private sealed record Plan(DeviceArena Arena, DeviceSpan<float> A, DeviceSpan<int> B, DeviceSpan<float> Zeros, DeviceSpan<float> Values);

    private static Plan Declare(ArenaCarver carve, float[]? values)
    {
        carve.Kind = DeviceMemoryKind.Activations;
        var a = carve.Take<float>("a", 1000);
        carve.Kind = DeviceMemoryKind.Workspace;
        var b = carve.Take<int>("b", 3);
        var zeros = carve.Zeroed<float>("zeros", 65);
        carve.Kind = DeviceMemoryKind.Weights;
        var v = carve.Upload("values", 5, values);
        return new Plan(carve.Arena, a, b, zeros, v);
    }

    [Test]
    public void AllocatedAndMeasuredPlansHaveTheSameLayout()
    {
        using var device = TestDevices.OpenEmulated();
        var measured = DeviceArena.Measure("test", c => Declare(c, null));
        var allocated = DeviceArena.Allocate(device, "test", c => Declare(c, [1, 2, 3, 4, 5]));
        using var arena = allocated.Arena;
        Assert.That(allocated.Arena.Tensors, Is.EqualTo(measured.Arena.Tensors));
        Assert.That(measured.Arena.Bytes, Is.EqualTo(4096 + 256 + 512 + 256));
        Assert.That(measured.Arena.BytesOf(DeviceMemoryKind.Activations), Is.EqualTo(4096));
        Assert.That(measured.Arena.BytesOf(DeviceMemoryKind.Workspace), Is.EqualTo(768));
        Assert.That(measured.Arena.BytesOf(DeviceMemoryKind.Weights), Is.EqualTo(256));
        Assert.That(allocated.A.Address % DeviceArena.Alignment, Is.Zero);

        var zeros = new float[65];
        device.CopyToHost(allocated.Zeros, zeros);
        Assert.That(zeros, Is.All.EqualTo(0f), "zeroed once allocated (fresh emulated memory holds NaN)");
        var values = new float[5];
        device.CopyToHost(allocated.Values, values);
        Assert.That(values, Is.EqualTo(new float[] { 1, 2, 3, 4, 5 }));
        if (device.IsAddressSanitized)
            Assert.That(device.AllocatedBytes, Is.EqualTo(measured.Arena.Tensors.Sum(t => Math.Max(t.Bytes, 1))),
                "under AddressSanitizer every tensor is an allocation of its own, so a kernel overrunning it is caught");
        else
        {
            Assert.That(device.AllocatedBytes, Is.EqualTo(measured.Arena.Bytes), "one allocation of exactly the measured size");
            Assert.That(allocated.B.Address - allocated.A.Address, Is.EqualTo(measured.B.Address - measured.A.Address));
        }
    }

    [Test]
    public void ADeclarationThatChangesBetweenPassesIsRefused()
    {
        using var device = TestDevices.OpenEmulated();
        int pass = 0;
        var error = Assert.Throws<InvalidOperationException>(() => DeviceArena.Allocate(device, "unsteady", c => c.Take<float>("grows", ++pass * 1000)));
        Assert.That(error!.Message, Does.Contain("unsteady").And.Contain("grows"));
        Assert.That(device.AllocatedBytes, Is.Zero, "the allocation is released");
    }

    [Test]
    public void AHostTensorOfTheWrongLengthNamesTheTensor()
    {
        var error = Assert.Throws<ArgumentException>(() => DeviceArena.Measure("gpt2 weights", c => c.Upload("h.3.ln_1.weight", 768, new float[767])));
        Assert.That(error!.Message, Does.Contain("h.3.ln_1.weight").And.Contain("767").And.Contain("768"));
    }

    [Test]
    public void AMeasuredPlanRefusesToRun()
    {
        var plan = DeviceArena.Measure("measured", c => (c.Device, c.Take<float>("x", 4)));
        Assert.That(plan.Item2.Address, Is.EqualTo(DeviceArena.MeasuredBase));
        Assert.Throws<InvalidOperationException>(() => plan.Device.Zero(plan.Item2));
    }
}

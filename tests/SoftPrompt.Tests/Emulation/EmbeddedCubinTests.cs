using SoftPrompt.Cuda;
using SoftPrompt.Cuda.Kernels;

namespace SoftPrompt.Tests.Emulation;

/// <summary>The kernel module ships prebuilt SASS for Ampere and Hopper beside the PTX.</summary>
public sealed class EmbeddedCubinTests
{
    [TestCase(8, 0, true)]
    [TestCase(8, 6, true)]
    [TestCase(8, 9, true)]
    [TestCase(9, 0, true)]
    [TestCase(7, 5, false)]
    [TestCase(10, 0, false)]
    public void CubinsAreOfferedOnlyToTheirArchitectureFamily(int major, int minor, bool offered)
    {
        if (!EmbeddedPtx.IsAvailable) Assert.Ignore(EmbeddedPtx.NotBuiltMessage);
        var cubin = EmbeddedPtx.LoadCubin(new ComputeCapability(major, minor));
        if (!offered)
        {
            Assert.That(cubin, Is.Null);
            return;
        }
        Assert.That(cubin, Is.Not.Null);
        Assert.That(cubin!.Take(4), Is.EqualTo(new byte[] { 0x7f, (byte)'E', (byte)'L', (byte)'F' }), "a cubin is an ELF image");
    }
}

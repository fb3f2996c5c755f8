using SoftPrompt.Cuda.Kernels;

namespace SoftPrompt.Cuda;

/// <summary>A tiny end-to-end check of a device: upload, one kernel launch (block reduction), download, compare with the CPU.</summary>
public static class DeviceSelfTest
{
    public static DoctorCheck Run(IComputeDevice device)
    {
        const int n = 1000;
        var values = new float[n];
        for (int i = 0; i < n; i++) values[i] = (i % 17) - 8 + 0.25f * (i % 3);
        int blocks = SelftestBlockSum.Blocks(n);
        using var x = device.Allocate<float>(n);
        using var sums = device.Allocate<float>(blocks);
        x.CopyFrom(values);
        SelftestBlockSum.Launch(device, x.Span, sums.Span);
        var result = new float[blocks];
        sums.CopyTo(result);
        double worst = 0;
        for (int b = 0; b < blocks; b++)
        {
            double expected = 0;
            for (int i = b * SelftestBlockSum.Threads; i < Math.Min(n, (b + 1) * SelftestBlockSum.Threads); i++) expected += values[i];
            worst = Math.Max(worst, Math.Abs(expected - result[b]));
        }
        return worst < 1e-3
            ? new DoctorCheck($"launch on {device.Kind}", DoctorStatus.Ok, $"block reduction over {n} values matches the CPU (max error {worst:G2})")
            : new DoctorCheck($"launch on {device.Kind}", DoctorStatus.Failed, $"block reduction differs from the CPU by {worst:G4}");
    }
}

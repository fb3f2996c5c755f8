using System.CommandLine;
using SoftPrompt.Cpu;
using SoftPrompt.Cuda;
using SoftPrompt.Cuda.Emulation;
using SoftPrompt.Cuda.Kernels;

namespace SoftPrompt.Cli.Commands;

/// <summary>`softprompt doctor`: what this machine can run — GPU, driver, cuBLAS, kernels, emulator, CPU BLAS.</summary>
internal static class DoctorCommand
{
    public static Command Create()
    {
        var command = new Command("doctor", "Report the devices SoftPrompt can use here");
        command.SetAction(_ => Run());
        return command;
    }

    private static int Run()
    {
        var report = CudaDoctor.Run(EmbeddedPtx.Load, [device => DeviceSelfTest.Run(device)], EmbeddedPtx.LoadCubin);
        var lines = report.Lines.Select(CliFlags.Translate).ToList();
        lines.Add(KernelAbiLine());
        lines.Add(EmulatorLine());
        lines.Add(CpuGemm.UsesOpenBlas
            ? "[ ok ] cpu: OpenBLAS (libopenblas.so.0) for GEMMs"
            : "[warn] cpu: OpenBLAS not found, GEMMs use the managed fallback (apt-get install libopenblas0-pthread)");
        foreach (string line in lines) Console.WriteLine(line);
        Console.WriteLine($"default device: {(report.CudaUsable ? "cuda" : "cpu")}");
        return ExitCode(lines);
    }

    /// <summary>1 when any check failed: scripts and CI can trust "doctor passed" (a machine without a GPU is not a failure).</summary>
    internal static int ExitCode(IEnumerable<string> lines) => lines.Any(l => l.StartsWith("[FAIL]", StringComparison.Ordinal)) ? 1 : 0;

    /// <summary>The embedded PTX's entry points against the launchers' declared signatures (count, order, sizes).</summary>
    private static string KernelAbiLine()
    {
        if (EmbeddedPtx.Load() is not string ptx) return "[info] kernels: not built into this library";
        var entries = KernelAbi.ParsePtx(ptx);
        var problems = KernelAbi.CheckPtx(entries, KernelAbi.FindLaunchers());
        return problems.Count == 0
            ? $"[ ok ] kernels: {entries.Count} PTX entry points match their launchers' signatures"
            : $"[FAIL] kernels: {string.Join("; ", problems)}";
    }

    private static string EmulatorLine()
    {
        if (!EmulatedDevice.IsAvailable(out string? reason)) return $"[info] cuda-emulated: not available ({reason})";
        try
        {
            using var device = new EmulatedDevice();
            var check = DeviceSelfTest.Run(device);
            return $"{check} — {device.Description}";
        }
        catch (Exception e) when (e is CudaException or InvalidOperationException)
        {
            return $"[FAIL] cuda-emulated: {CliFlags.Translate(e.Message)}";
        }
    }
}

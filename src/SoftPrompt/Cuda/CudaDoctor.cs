using System.Runtime.InteropServices;
using SoftPrompt.Cuda.Interop;

namespace SoftPrompt.Cuda;

public enum DoctorStatus { Ok, Info, Warning, Failed }

/// <summary>One finding of <see cref="CudaDoctor"/>.</summary>
public sealed record DoctorCheck(string Name, DoctorStatus Status, string Detail)
{
    public override string ToString() => $"[{Label(Status)}] {Name}: {Detail}";

    private static string Label(DoctorStatus status) => status switch
    {
        DoctorStatus.Ok => " ok ",
        DoctorStatus.Info => "info",
        DoctorStatus.Warning => "warn",
        _ => "FAIL",
    };
}

/// <summary>What <see cref="CudaDoctor.Run"/> found, in order.</summary>
public sealed record DoctorReport(IReadOnlyList<DoctorCheck> Checks)
{
    /// <summary>A GPU opened (driver, device and cuBLAS all work).</summary>
    public bool CudaUsable { get; init; }
    public IEnumerable<string> Lines => Checks.Select(c => c.ToString());
    public override string ToString() => string.Join(Environment.NewLine, Lines);
}

/// <summary>
/// Explains what this machine can run: .NET, the NVIDIA driver, each GPU, cuBLAS, and whether the kernel module
/// loads. Never throws; on a machine without a driver it says so and stops there.
/// </summary>
public static class CudaDoctor
{
    /// <param name="loadPtx">The kernel module's PTX provider (as given to <see cref="CudaDevice.Open"/>); null skips the module check.</param>
    /// <param name="deviceChecks">More checks run on GPU 0 once it opens (e.g. a tiny kernel launch); an exception becomes a failed check.</param>
    /// <param name="loadCubin">Prebuilt cubins per compute capability (as given to <see cref="CudaDevice.Open"/>), tried before the PTX.</param>
    public static DoctorReport Run(Func<string?>? loadPtx = null, IEnumerable<Func<CudaDevice, DoctorCheck>>? deviceChecks = null,
        Func<ComputeCapability, byte[]?>? loadCubin = null)
    {
        var checks = new List<DoctorCheck>
        {
            new(".NET", DoctorStatus.Info, $"{RuntimeInformation.FrameworkDescription} on {RuntimeInformation.OSDescription} ({RuntimeInformation.ProcessArchitecture})"),
        };
        bool usable = false;
        try
        {
            usable = RunDriverChecks(checks, loadPtx, deviceChecks, loadCubin);
        }
        catch (Exception e)
        {
            checks.Add(new("doctor", DoctorStatus.Failed, $"unexpected {e.GetType().Name}: {e.Message}"));
        }
        return new DoctorReport(checks) { CudaUsable = usable };
    }

    private static bool RunDriverChecks(List<DoctorCheck> checks, Func<string?>? loadPtx, IEnumerable<Func<CudaDevice, DoctorCheck>>? deviceChecks,
        Func<ComputeCapability, byte[]?>? loadCubin)
    {
        // No driver, or a driver that sees no GPU, is a machine without a GPU (cpu and cuda-emulated still work): reported,
        // not failed, so that doctor's exit code means "something here is broken".
        if (!CudaDriverProbe.IsDriverLoadable)
        {
            checks.Add(new("NVIDIA driver", DoctorStatus.Info, CudaDriverProbe.NoDriverMessage()));
            checks.Add(CublasLibraryCheck());
            return false;
        }
        string driverFile = $"{CudaLibraries.DriverImportName} loaded from {LoadedPath(CudaLibraries.DriverImportName)}";
        if (!CudaDriverProbe.TryInitialize(out var failure))
        {
            checks.Add(new("NVIDIA driver", CudaDriverProbe.NoGpuPresent ? DoctorStatus.Info : DoctorStatus.Failed, $"{failure} ({driverFile})"));
            checks.Add(CublasLibraryCheck());
            return false;
        }
        int driverVersion = CudaDriverProbe.TryGetDriverVersion() ?? 0;
        checks.Add(new("NVIDIA driver", DoctorStatus.Ok,
            $"{driverFile}; supports CUDA {CudaDevice.FormatVersion(driverVersion)} (kernels from a newer nvcc will not load)"));

        var devices = CudaDevice.QueryDevices();
        if (devices.Count == 0)
        {
            checks.Add(new("GPUs", DoctorStatus.Info, "the driver sees no GPU: check nvidia-smi and CUDA_VISIBLE_DEVICES"));
            return false;
        }
        foreach (var device in devices)
        {
            bool supported = device.ComputeCapability.Major >= 8;
            checks.Add(new($"GPU {device.Ordinal}", supported ? DoctorStatus.Ok : DoctorStatus.Warning,
                device.Summary + (supported ? "" : " — bf16 kernels need compute capability 8.0 or newer")));
        }
        checks.Add(CublasLibraryCheck());

        CudaDevice opened;
        try
        {
            opened = CudaDevice.Open(0, loadPtx, loadCubin);
        }
        catch (CudaException e)
        {
            checks.Add(new("open GPU 0", DoctorStatus.Failed, e.Message));
            return false;
        }
        using (opened)
        {
            checks.Add(new("open GPU 0", DoctorStatus.Ok,
                $"context, stream and cuBLAS {CudaDevice.FormatCublasVersion(opened.CublasVersion)} handle created; {opened.MemoryInfo}"));
            if (loadPtx is not null) checks.Add(ModuleCheck(opened));
            foreach (var check in deviceChecks ?? [])
            {
                try { checks.Add(check(opened)); }
                catch (Exception e) { checks.Add(new("device check", DoctorStatus.Failed, $"{e.GetType().Name}: {e.Message}")); }
            }
        }
        return true;
    }

    private static DoctorCheck ModuleCheck(CudaDevice device)
    {
        try
        {
            var module = device.Kernels;
            return new("kernel module", DoctorStatus.Ok, module.IsBinary
                ? $"prebuilt cubin for compute capability {device.ComputeCapability} loaded in {module.JitMilliseconds:F0} ms"
                : $"PTX JIT-compiled for compute capability {device.ComputeCapability} in {module.JitMilliseconds:F0} ms");
        }
        catch (CudaException e)
        {
            bool notBuilt = e.Message == CudaDevice.KernelsNotBuiltMessage;
            return new("kernel module", notBuilt ? DoctorStatus.Warning : DoctorStatus.Failed, e.Message);
        }
    }

    private static unsafe DoctorCheck CublasLibraryCheck()
    {
        if (!NativeLibraryResolver.TryLoad(CudaLibraries.CublasImportName, out _))
            return new("cuBLAS", DoctorStatus.Failed,
                $"no libcublas.so.{string.Join("/.", CudaLibraries.CublasMajors)} found ({NativeLibraryResolver.DescribeAttempts(CudaLibraries.CublasImportName)}) — " +
                $"install cuBLAS or set {CudaLibraries.LibraryDirectoryVariable}");
        string where = LoadedPath(CudaLibraries.CublasImportName);
        try
        {
            int major = 0, minor = 0, patch = 0;
            // A host-only query: works before any GPU is touched.
            if (Cublas.cublasGetProperty(LibraryProperty.MajorVersion, &major) == CublasStatus.Success
                && Cublas.cublasGetProperty(LibraryProperty.MinorVersion, &minor) == CublasStatus.Success
                && Cublas.cublasGetProperty(LibraryProperty.PatchLevel, &patch) == CublasStatus.Success)
                return new("cuBLAS", DoctorStatus.Ok, $"{major}.{minor}.{patch} loaded from {where}");
        }
        catch (EntryPointNotFoundException) { }
        return new("cuBLAS", DoctorStatus.Ok, $"loaded from {where}");
    }

    /// <summary>The loaded file; for a bare soname the real file from /proc/self/maps, e.g. "libcuda.so.1 (/usr/lib/x86_64-linux-gnu/libcuda.so.580.95.05)".</summary>
    private static string LoadedPath(string importName)
    {
        string? loaded = NativeLibraryResolver.LoadedFrom(importName);
        if (loaded is null) return "(unknown)";
        if (Path.IsPathRooted(loaded)) return loaded;
        string stem = loaded[..(loaded.IndexOf(".so", StringComparison.Ordinal) + 3)] + ".";
        try
        {
            foreach (var line in File.ReadLines("/proc/self/maps"))
            {
                int slash = line.IndexOf('/');
                if (slash < 0) continue;
                string path = line[slash..];
                if (Path.GetFileName(path).StartsWith(stem, StringComparison.Ordinal)) return $"{loaded} ({path})";
            }
        }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
        return loaded;
    }
}

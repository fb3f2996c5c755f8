using System.Runtime.InteropServices;

namespace SoftPrompt.Cuda.Interop;

/// <summary>
/// Where the CUDA driver and cuBLAS are looked for. The driver is libcuda.so.1 as the system loader finds it
/// (it ships with the kernel driver, so no toolkit is needed). cuBLAS comes with a toolkit, a distribution package
/// or a pip wheel, under a versioned name: the newest major the driver supports wins. The directory in
/// SOFTPROMPT_CUDA_LIB_DIR is searched before anything else.
/// </summary>
public static class CudaLibraries
{
    public const string DriverImportName = CudaDriver.Library;
    public const string CublasImportName = "cublas";
    /// <summary>cuBLASLt, the sibling of the cuBLAS that loaded (same major, same directory when it has one).</summary>
    public const string CublasLtImportName = "cublasLt";
    public const string LibraryDirectoryVariable = "SOFTPROMPT_CUDA_LIB_DIR";

    /// <summary>cuBLAS majors we bind to, newest first. The entry points we use are unchanged across them.</summary>
    public static IReadOnlyList<int> CublasMajors { get; } = [13, 12, 11];

    static CudaLibraries()
    {
        NativeLibraryResolver.Register(DriverImportName, DriverCandidates);
        NativeLibraryResolver.Register(CublasImportName, CublasCandidates, PreloadCublasLt);
        NativeLibraryResolver.Register(CublasLtImportName, CublasLtCandidates);
    }

    /// <summary>Runs the static constructor: both names are registered before the first call into either library.</summary>
    public static void EnsureRegistered() { }

    /// <summary>The directories searched after the system loader, in order (only those that exist).</summary>
    public static IReadOnlyList<string> SearchDirectories()
    {
        var dirs = new List<string>();
        void Add(string? dir)
        {
            if (!string.IsNullOrWhiteSpace(dir) && Directory.Exists(dir) && !dirs.Contains(dir)) dirs.Add(dir);
        }
        foreach (var variable in new[] { "CUDA_HOME", "CUDA_PATH", "CUDA_ROOT" })
        {
            string? root = Environment.GetEnvironmentVariable(variable);
            if (root is null) continue;
            Add(Path.Combine(root, "lib64"));
            Add(Path.Combine(root, "lib"));
        }
        Add("/usr/local/cuda/lib64");
        Add("/usr/local/cuda/targets/x86_64-linux/lib");
        Add("/usr/lib/x86_64-linux-gnu");
        Add("/usr/lib64");
        Add("/usr/local/nvidia/lib64");
        Add("/usr/lib/wsl/lib");
        foreach (var dir in PythonNvidiaLibraryDirectories()) Add(dir);
        string? conda = Environment.GetEnvironmentVariable("CONDA_PREFIX");
        if (conda is not null) Add(Path.Combine(conda, "lib"));
        return dirs;
    }

    private static string? OverrideDirectory()
    {
        string? dir = Environment.GetEnvironmentVariable(LibraryDirectoryVariable);
        return string.IsNullOrWhiteSpace(dir) ? null : dir;
    }

    private static IEnumerable<string> DriverCandidates()
    {
        const string name = "libcuda.so.1";
        if (OverrideDirectory() is { } overrideDir) yield return Path.Combine(overrideDir, name);
        yield return name;
        // Only for drivers installed outside the loader's search path; never the toolkit's stubs/ copy, which loads
        // but answers every call with CUDA_ERROR_STUB_LIBRARY.
        foreach (var dir in new[] { "/usr/lib/x86_64-linux-gnu", "/usr/lib64", "/usr/local/nvidia/lib64", "/usr/lib/wsl/lib" })
            yield return Path.Combine(dir, name);
    }

    private static IEnumerable<string> CublasCandidates()
    {
        int? driverVersion = CudaDriverProbe.TryGetDriverVersion();
        string? overrideDir = OverrideDirectory();
        IReadOnlyList<string>? dirs = null;
        foreach (int major in CublasMajors)
        {
            // A cuBLAS newer than the driver loads but fails in cublasCreate; skip it so an older one is used.
            if (driverVersion is { } v && major * 1000 > v) continue;
            string name = $"libcublas.so.{major}";
            if (overrideDir is not null) yield return Path.Combine(overrideDir, name);
            yield return name;
            dirs ??= SearchDirectories();
            foreach (var dir in dirs) yield return Path.Combine(dir, name);
        }
    }

    // The same search as cuBLAS's, for libcublasLt.so.N: the sibling of a loaded libcublas first, so the two majors match.
    private static IEnumerable<string> CublasLtCandidates()
    {
        if (NativeLibraryResolver.LoadedFrom(CublasImportName) is { } cublasPath)
            yield return Path.Combine(Path.GetDirectoryName(cublasPath) ?? "", Path.GetFileName(cublasPath).Replace("libcublas.", "libcublasLt.", StringComparison.Ordinal));
        foreach (var candidate in CublasCandidates())
            yield return Path.Combine(Path.GetDirectoryName(candidate) ?? "", Path.GetFileName(candidate).Replace("libcublas.", "libcublasLt.", StringComparison.Ordinal));
    }

    // libcublas.so.N needs libcublasLt.so.N; a toolkit's lib64 has no RUNPATH, so load the sibling first and the
    // loader then finds it already loaded by its soname.
    private static void PreloadCublasLt(string cublasPath)
    {
        string file = Path.GetFileName(cublasPath);
        string sibling = Path.Combine(Path.GetDirectoryName(cublasPath) ?? "", file.Replace("libcublas.", "libcublasLt.", StringComparison.Ordinal));
        if (File.Exists(sibling)) NativeLibrary.TryLoad(sibling, out _);
    }

    // pip's nvidia-cublas-cu12 wheel installs nvidia/cublas/lib; the CUDA 13 wheels install nvidia/cu13/lib.
    private static IEnumerable<string> PythonNvidiaLibraryDirectories()
    {
        var roots = new List<string>();
        void AddPythonRoots(string libDir, string packagesFolder)
        {
            try
            {
                if (!Directory.Exists(libDir)) return;
                foreach (var py in Directory.EnumerateDirectories(libDir, "python3*"))
                    roots.Add(Path.Combine(py, packagesFolder));
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
        }
        string? venv = Environment.GetEnvironmentVariable("VIRTUAL_ENV");
        if (venv is not null) AddPythonRoots(Path.Combine(venv, "lib"), "site-packages");
        AddPythonRoots("/usr/local/lib", "dist-packages");
        AddPythonRoots("/usr/local/lib", "site-packages");
        roots.Add("/usr/lib/python3/dist-packages");
        string home = Environment.GetFolderPath(Environment.SpecialFolder.UserProfile);
        if (home.Length > 0) AddPythonRoots(Path.Combine(home, ".local", "lib"), "site-packages");
        try
        {
            if (Directory.Exists("/opt"))
                foreach (var opt in Directory.EnumerateDirectories("/opt"))
                    AddPythonRoots(Path.Combine(opt, ".venv", "lib"), "site-packages");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }

        foreach (var root in roots)
            foreach (var sub in new[] { "nvidia/cu13/lib", "nvidia/cublas/lib", "nvidia/cu12/lib" })
            {
                string dir = Path.Combine(root, sub);
                if (Directory.Exists(dir)) yield return dir;
            }
    }
}

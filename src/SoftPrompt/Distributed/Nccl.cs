using System.Runtime.InteropServices;
using SoftPrompt.Cuda.Interop;

namespace SoftPrompt.Distributed;

/// <summary>
/// The few NCCL calls data-parallel training on GPUs needs, bound to libnccl.so.2 and resolved at run time like cuBLAS
/// (SOFTPROMPT_CUDA_LIB_DIR first, then the loader's search, the CUDA toolkit's and pip's nvidia-nccl directories), so
/// a machine without NCCL builds, tests and trains on the CPU. Every call's result is checked by <see cref="Check"/>,
/// which names the call and gives ncclGetErrorString's reason.
/// </summary>
internal static unsafe partial class Nccl
{
    public const string ImportName = "nccl";
    public const string FileName = "libnccl.so.2";
    public const int UniqueIdBytes = 128;   // NCCL_UNIQUE_ID_BYTES
    public const int Float32 = 7;           // ncclFloat32
    public const int Sum = 0;               // ncclSum

    /// <summary>ncclUniqueId: 128 opaque bytes rank 0 makes and every rank receives (over MPI) before joining.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct UniqueId
    {
        public fixed byte Bytes[UniqueIdBytes];
    }

    private static readonly Lock Gate = new();
    private static string? loadedFrom;

    /// <summary>The libnccl file that loaded; null before <see cref="Load"/>.</summary>
    public static string? LoadedFrom => loadedFrom;

    /// <summary>Where libnccl.so.2 is looked for, in order.</summary>
    public static IEnumerable<string> Candidates()
    {
        string? overrideDir = Environment.GetEnvironmentVariable(CudaLibraries.LibraryDirectoryVariable);
        if (!string.IsNullOrWhiteSpace(overrideDir)) yield return Path.Combine(overrideDir, FileName);
        yield return FileName;
        foreach (string dir in CudaLibraries.SearchDirectories())
        {
            yield return Path.Combine(dir, FileName);
            // pip's nvidia-nccl-cuNN wheel (PyTorch's dependency) sits beside the cuBLAS wheel: nvidia/nccl/lib.
            string wheel = Path.GetFullPath(Path.Combine(dir, "..", "..", "nccl", "lib", FileName));
            if (dir.Contains("/nvidia/", StringComparison.Ordinal)) yield return wheel;
        }
    }

    /// <summary>
    /// Loads the first of <paramref name="candidates"/> that exists and loads (again: the loader counts, and a test's
    /// missing file must fail even where NCCL loaded before); otherwise throws naming every file tried and what to install.
    /// </summary>
    public static string Load(IEnumerable<string> candidates)
    {
        lock (Gate)
        {
            var tried = new List<string>();
            foreach (string candidate in candidates)
            {
                if (Path.IsPathRooted(candidate) && !File.Exists(candidate)) continue;
                if (!NativeLibrary.TryLoad(candidate, out _))
                {
                    tried.Add(candidate);
                    continue;
                }
                NativeLibraryResolver.Register(ImportName, () => [candidate]);
                return loadedFrom = candidate;
            }
            throw new NcclException($"NCCL's {FileName} was not found ({(tried.Count == 0 ? "no candidate file exists" : "tried " + string.Join(", ", tried))}); " +
                "`device` cuda sums the prompt gradients of several processes with NCCL. Install it (pip install nvidia-nccl-cu12, which PyTorch's CUDA wheels bring; " +
                $"Debian/Ubuntu: libnccl2 from NVIDIA's CUDA repository) or set {CudaLibraries.LibraryDirectoryVariable} to the directory holding {FileName}.");
        }
    }

    /// <summary>Throws an <see cref="NcclException"/> naming <paramref name="call"/> unless <paramref name="result"/> is ncclSuccess.</summary>
    public static void Check(int result, string call)
    {
        if (result == 0) return;
        string reason = Marshal.PtrToStringUTF8(ncclGetErrorString(result)) ?? $"error code {result}";
        throw new NcclException($"{call} failed: {reason} (NCCL error {result}); NCCL_DEBUG=WARN prints NCCL's own account.");
    }

    [LibraryImport(ImportName)] public static partial int ncclGetVersion(int* version);
    [LibraryImport(ImportName)] public static partial int ncclGetUniqueId(UniqueId* uniqueId);
    [LibraryImport(ImportName)] public static partial int ncclCommInitRank(nint* comm, int ranks, UniqueId commId, int rank);
    [LibraryImport(ImportName)] public static partial int ncclAllReduce(void* send, void* receive, nuint count, int datatype, int op, nint comm, nint stream);
    [LibraryImport(ImportName)] public static partial int ncclCommDestroy(nint comm);
    [LibraryImport(ImportName)] private static partial nint ncclGetErrorString(int result);
}

/// <summary>An NCCL call failed, or libnccl is missing; the message names the call or the file. (An InvalidOperationException, so the command prints it as one line.)</summary>
public sealed class NcclException(string message) : InvalidOperationException(message);

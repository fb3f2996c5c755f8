using System.Runtime.InteropServices;
using SoftPrompt.Cuda.Interop;

namespace SoftPrompt.Distributed;

/// <summary>
/// The few MPI calls data-parallel training needs, bound to Open MPI's libmpi.so.40 (Debian: libopenmpi3) and resolved
/// at run time, so a machine without MPI builds, tests and trains as one process. Open MPI's handles (MPI_COMM_WORLD,
/// MPI_DOUBLE, MPI_SUM …) are the addresses of exported objects (ompi_mpi_comm_world …), read with GetExport; MPICH's are
/// integers, so this binding is Open MPI's only. Every call's result is checked by <see cref="Check"/>, which names the call.
/// </summary>
internal static unsafe partial class OpenMpi
{
    public const string ImportName = "libmpi";
    private const int ThreadFunneled = 1;     // MPI_THREAD_FUNNELED: only the thread that called init makes MPI calls
    private const int MaxErrorString = 256;   // MPI_MAX_ERROR_STRING
    private static readonly string[] Candidates = ["libmpi.so.40", "libmpi.so"];

    private static readonly Lazy<Handles> Loaded = new(Load);

    /// <summary>MPI_COMM_WORLD, the datatypes and MPI_SUM; loads libmpi on first use.</summary>
    public static Handles Symbols => Loaded.Value;

    public readonly record struct Handles(nint CommWorld, nint Double, nint Float, nint Byte, string Library);

    private static Handles Load()
    {
        // Open MPI's plugins (mca_pml_ob1.so …) use libmpi's symbols without linking it, so libmpi must be loaded
        // RTLD_GLOBAL before MPI_Init dlopens them; .NET's NativeLibrary.Load is RTLD_LOCAL. The resolver then hands
        // the same (already loaded) library to the [LibraryImport]s below.
        var failures = new List<string>();
        foreach (string name in Candidates)
        {
            nint handle = dlopen(name, RtldNow | RtldGlobal);
            if (handle == 0)
            {
                failures.Add($"{name} ({Marshal.PtrToStringUTF8(dlerror())})");
                continue;
            }
            NativeLibraryResolver.Register(ImportName, () => [name]);
            return new Handles(Export(handle, name, "ompi_mpi_comm_world"), Export(handle, name, "ompi_mpi_double"),
                Export(handle, name, "ompi_mpi_float"), Export(handle, name, "ompi_mpi_byte"), name);
        }
        throw new MpiException($"Open MPI's library was not found (tried {string.Join("; ", failures)}); install it with `tools/install-deps.sh mpi` (Debian: libopenmpi3) or run as one process without mpirun/srun.");
    }

    private static nint Export(nint handle, string library, string symbol) =>
        NativeLibrary.TryGetExport(handle, symbol, out nint address) ? address
            : throw new MpiException($"{library} has no {symbol}: it is not Open MPI's libmpi; SoftPrompt binds Open MPI 4 or 5 only (launch with Open MPI's mpirun, or srun with Open MPI).");

    /// <summary>Throws an <see cref="MpiException"/> naming <paramref name="call"/> unless <paramref name="result"/> is MPI_SUCCESS.</summary>
    public static void Check(int result, string call)
    {
        if (result == 0) return;
        byte* text = stackalloc byte[MaxErrorString + 1];
        int length = 0;
        string reason = MPI_Error_string(result, text, &length) == 0 ? Marshal.PtrToStringUTF8((nint)text, length) : $"error code {result}";
        throw new MpiException($"{call} failed: {reason}.");
    }

    public static void InitFunneled()
    {
        int provided;
        Check(MPI_Init_thread(null, null, ThreadFunneled, &provided), "MPI_Init_thread");
    }

    private const int RtldNow = 0x2, RtldGlobal = 0x100;
    [LibraryImport("libc.so.6", StringMarshalling = StringMarshalling.Utf8)] private static partial nint dlopen(string file, int mode);
    [LibraryImport("libc.so.6")] private static partial nint dlerror();

    [LibraryImport(ImportName)] private static partial int MPI_Init_thread(int* argc, byte*** argv, int required, int* provided);
    [LibraryImport(ImportName)] public static partial int MPI_Initialized(int* flag);
    [LibraryImport(ImportName)] public static partial int MPI_Finalized(int* flag);
    [LibraryImport(ImportName)] public static partial int MPI_Finalize();
    [LibraryImport(ImportName)] public static partial int MPI_Comm_rank(nint comm, int* rank);
    [LibraryImport(ImportName)] public static partial int MPI_Comm_size(nint comm, int* size);
    [LibraryImport(ImportName)] public static partial int MPI_Allgather(void* sendBuffer, int sendCount, nint sendType, void* receiveBuffer, int receiveCount, nint receiveType, nint comm);
    [LibraryImport(ImportName)] public static partial int MPI_Bcast(void* buffer, int count, nint datatype, int root, nint comm);
    [LibraryImport(ImportName)] public static partial int MPI_Barrier(nint comm);
    [LibraryImport(ImportName)] public static partial int MPI_Abort(nint comm, int errorCode);
    [LibraryImport(ImportName)] private static partial int MPI_Error_string(int errorCode, byte* text, int* length);
}

/// <summary>An MPI call failed; the message names the call. (An InvalidOperationException, so the command prints it as one line.)</summary>
public sealed class MpiException(string message) : InvalidOperationException(message);

using System.Reflection;

namespace SoftPrompt.Cuda.Kernels;

/// <summary>
/// The project's kernel module: kernels/build-kernels.sh compiles every kernels/*.cu as ONE translation unit into
/// ONE PTX file (kernels/build/ptx/softprompt.ptx), embedded in this assembly as <see cref="ResourceName"/>. So a
/// device loads one module once per process and every kernel is looked up in it by name. The emulator compiles the
/// same translation unit, so both sides see the same set of kernels.
/// </summary>
public static class EmbeddedPtx
{
    public const string ResourceName = "SoftPrompt.Kernels.softprompt.ptx";
    public const string NotBuiltMessage = CudaDevice.KernelsNotBuiltMessage;

    private static readonly Lazy<string?> Text = new(Read);

    /// <summary>The PTX text, or null when the kernels were not built (no nvcc at build time). Fits <c>Func&lt;string?&gt;</c>.</summary>
    public static string? Load() => Text.Value;

    public static bool IsAvailable => Load() is not null;

    /// <summary>
    /// The cubin that ptxas built for the architecture family of <paramref name="capability"/> (sm_80 for 8.x, whose
    /// SASS runs on 8.6/8.9 too; sm_90 for 9.0), or null: other GPUs JIT-compile the PTX. Fits CudaDevice.Open.
    /// </summary>
    public static byte[]? LoadCubin(ComputeCapability capability)
    {
        string? arch = capability switch
        {
            { Major: 8 } => "sm_80",
            { Major: 9, Minor: 0 } => "sm_90",
            _ => null,
        };
        if (arch is null) return null;
        using Stream? stream = typeof(EmbeddedPtx).Assembly.GetManifestResourceStream($"SoftPrompt.Kernels.softprompt.{arch}.cubin");
        if (stream is null) return null;
        var bytes = new byte[stream.Length];
        stream.ReadExactly(bytes);
        return bytes;
    }

    private static string? Read()
    {
        using Stream? stream = typeof(EmbeddedPtx).Assembly.GetManifestResourceStream(ResourceName);
        if (stream is null) return null;
        using var reader = new StreamReader(stream);
        return reader.ReadToEnd();
    }

    /// <summary>Every embedded kernel module resource (today exactly one).</summary>
    public static IReadOnlyList<string> ResourceNames() =>
        [.. typeof(EmbeddedPtx).Assembly.GetManifestResourceNames().Where(n => n.StartsWith("SoftPrompt.Kernels.", StringComparison.Ordinal) && n.EndsWith(".ptx", StringComparison.Ordinal))];
}

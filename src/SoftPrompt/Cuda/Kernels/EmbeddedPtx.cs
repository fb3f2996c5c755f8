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

    internal static Assembly Assembly => typeof(EmbeddedPtx).Assembly;
}

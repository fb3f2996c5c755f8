using Microsoft.CodeAnalysis.Diagnostics;

namespace SoftPrompt.Generators;

/// <summary>
/// The full name of the stubs class a compilation generates: <c>SoftPrompt.Cuda.Kernels.KernelStubs</c> unless the
/// project sets the MSBuild property <c>SoftPromptKernelStubs</c> (the tests project, whose test-only kernel module
/// gets stubs of its own beside the library's).
/// </summary>
internal static class KernelStubsType
{
    public const string Default = "SoftPrompt.Cuda.Kernels.KernelStubs";
    private const string Property = "build_property.SoftPromptKernelStubs";

    public static string Of(AnalyzerConfigOptionsProvider options) =>
        options.GlobalOptions.TryGetValue(Property, out string? name) && !string.IsNullOrWhiteSpace(name) ? name.Trim() : Default;
}

using System.Collections.Immutable;
using System.Reflection;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.Diagnostics;
using Microsoft.CodeAnalysis.Text;
using SoftPrompt.Cuda;
using SoftPrompt.Generators;

namespace SoftPrompt.Tests.Generators;

/// <summary>
/// C# source compiled in memory against the SoftPrompt library, with <see cref="KernelStubGenerator"/> run over
/// .cu texts given as AdditionalFiles — the way the library's own build runs it.
/// </summary>
internal sealed class StubCompilation
{
    private StubCompilation(Compilation compilation, ImmutableArray<Diagnostic> generatorDiagnostics)
    {
        Compilation = compilation;
        GeneratorDiagnostics = generatorDiagnostics;
    }

    /// <summary>The compilation with the generated stubs added.</summary>
    public Compilation Compilation { get; }
    public ImmutableArray<Diagnostic> GeneratorDiagnostics { get; }

    /// <summary>The generated KernelStubs source, or null when the generator emitted none.</summary>
    public string? StubSource => Compilation.SyntaxTrees.FirstOrDefault(t => t.FilePath.EndsWith(KernelStubGenerator.HintName, StringComparison.Ordinal))?.ToString();

    public static StubCompilation Create(string csharp, params (string Path, string Text)[] kernelFiles)
    {
        _ = typeof(IComputeDevice);  // the library is loaded, so it is among the references
        var references = AppDomain.CurrentDomain.GetAssemblies()
            .Where(a => !a.IsDynamic && a.Location.Length > 0)
            .Select(a => MetadataReference.CreateFromFile(a.Location));
        var options = new CSharpCompilationOptions(OutputKind.DynamicallyLinkedLibrary, allowUnsafe: true, nullableContextOptions: NullableContextOptions.Enable);
        var compilation = CSharpCompilation.Create("Stubs" + Guid.NewGuid().ToString("N"),
            [CSharpSyntaxTree.ParseText(csharp, new CSharpParseOptions(LanguageVersion.Latest))], references, options);
        var driver = CSharpGeneratorDriver.Create(new KernelStubGenerator())
            .AddAdditionalTexts([.. kernelFiles.Select(f => (AdditionalText)new InMemoryText(f.Path, f.Text))]);
        driver.RunGeneratorsAndUpdateCompilation(compilation, out var output, out var diagnostics);
        return new StubCompilation(output, diagnostics);
    }

    /// <summary>Compiler errors of the compilation (generated code included).</summary>
    public IReadOnlyList<Diagnostic> Errors => Compilation.GetDiagnostics().Where(d => d.Severity == DiagnosticSeverity.Error).ToList();

    /// <summary>What <see cref="KernelStubAnalyzer"/> reports on the compilation.</summary>
    public IReadOnlyList<Diagnostic> AnalyzerDiagnostics() =>
        Compilation.WithAnalyzers([new KernelStubAnalyzer()]).GetAnalyzerDiagnosticsAsync().GetAwaiter().GetResult();

    /// <summary>The compiled assembly (fails the test on compile errors).</summary>
    public Assembly Load()
    {
        using var image = new MemoryStream();
        var emitted = Compilation.Emit(image);
        Assert.That(emitted.Success, "does not compile:\n" + string.Join("\n", emitted.Diagnostics.Where(d => d.Severity == DiagnosticSeverity.Error)));
        return Assembly.Load(image.ToArray());
    }

    private sealed class InMemoryText(string path, string text) : AdditionalText
    {
        public override string Path => path;
        public override SourceText GetText(CancellationToken cancellationToken = default) => SourceText.From(text);
    }
}

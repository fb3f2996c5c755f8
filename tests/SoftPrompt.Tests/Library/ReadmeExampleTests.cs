using System.Reflection;
using System.Text.RegularExpressions;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using SoftPrompt.Engines;
using SoftPrompt.Tests.Tuning;
using SoftPrompt.Text;

namespace SoftPrompt.Tests.Library;

/// <summary>
/// The README's "Use as a library" example, taken from README.md as it is written, compiled with Roslyn against the
/// library and run on the bundled demo model: the README cannot drift from the API or stop training.
/// </summary>
public sealed class ReadmeExampleTests
{
    /// <summary>The first ```csharp block after "## Use as a library".</summary>
    private static string ReadmeExample()
    {
        string readme = File.ReadAllText(Path.Combine(TestContext.CurrentContext.TestDirectory, "README.md"));
        int section = readme.IndexOf("## Use as a library", StringComparison.Ordinal);
        Assert.That(section, Is.GreaterThanOrEqualTo(0), "README.md has no \"## Use as a library\" section");
        var block = Regex.Match(readme[section..], @"```csharp\n(.*?)```", RegexOptions.Singleline);
        Assert.That(block.Success, "the library section has no ```csharp block");
        return block.Groups[1].Value;
    }

    /// <summary>The example as the body of a method: the model directory and the rows come in, the trained prompts go out.</summary>
    private static Func<string, List<TokenizedExample>, float[]> Compile(string example)
    {
        string source = $$"""
            using System;
            using System.Collections.Generic;
            using System.Linq;
            using SoftPrompt.Engines;
            using SoftPrompt.Text;
            using SoftPrompt.Tuning;

            public static class ReadmeExample
            {
                public static float[] Run(string modelDir, List<TokenizedExample> rows)
                {
            {{example}}
                    return prompts;
                }
            }
            """;
        var references = AppDomain.CurrentDomain.GetAssemblies()
            .Where(a => !a.IsDynamic && a.Location.Length > 0)
            .Select(a => MetadataReference.CreateFromFile(a.Location));
        var compilation = CSharpCompilation.Create("ReadmeExample", [CSharpSyntaxTree.ParseText(source)], references,
            new CSharpCompilationOptions(OutputKind.DynamicallyLinkedLibrary));
        using var image = new MemoryStream();
        var emitted = compilation.Emit(image);
        Assert.That(emitted.Success, "the README example does not compile:\n" + string.Join("\n", emitted.Diagnostics.Where(d => d.Severity == DiagnosticSeverity.Error)));
        var run = Assembly.Load(image.ToArray()).GetType("ReadmeExample")!.GetMethod("Run")!;
        return (modelDir, rows) => (float[])run.Invoke(null, [modelDir, rows])!;
    }

    [Category("Slow")]
    [Test]
    public void TheReadmeExampleCompilesRunsAndTrains()
    {
        _ = typeof(OptimizerSettings); // the library assembly is loaded before references are collected
        var rows = PretokenizedJsonl.Load(DemoModel.Data("reverse.train.jsonl"), 23, 28).Take(16).ToList();
        float[] trained = Compile(ReadmeExample())(DemoModel.Directory, rows);

        // The example's starting prompts, made again as it makes them, against the ones it trained.
        var layout = new PromptLayout([4, 8]);
        using var model = EngineFactory.Open(DemoModel.Directory, "cpu");
        var engine = model.Engine;
        var random = new Random(0);
        var initial = new float[layout.ValueCount(engine.EmbeddingSize)];
        for (int i = 0; i < initial.Length; i++) initial[i] = (float)(random.NextDouble() - 0.5);
        var batch = new TokenBatch(rowCapacity: 16, tokenCapacity: 32, layout);
        batch.Reset(rows.Max(r => r.Length));
        for (int i = 0; i < rows.Count; i++) batch.AddRow(rows[i].Input, rows[i].Target, promptIndex: i % 2);
        engine.LoadPrompts(initial, layout);
        float before = engine.Forward(batch);
        engine.LoadPrompts(trained, layout);
        float after = engine.Forward(batch);
        Assert.That(after, Is.LessThan(0.8f * before), $"the README's 20 AdamW steps lower the loss ({before:F3} → {after:F3})");
    }
}

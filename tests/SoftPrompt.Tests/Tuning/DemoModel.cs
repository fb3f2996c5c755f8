using SoftPrompt.Cli.Commands;
using SoftPrompt.Engines;
using SoftPrompt.Text;

namespace SoftPrompt.Tests.Tuning;

/// <summary>The bundled demo model (tiny GPT-2 over a 23-symbol vocabulary) and its data, for tests that train for real.</summary>
internal static class DemoModel
{
    public static string Directory => Path.Combine(DemoCommand.DemoDirectory, "model");
    public static string Data(string file) => Path.Combine(DemoCommand.DemoDirectory, "data", file);
    public static string Prompt(string task) => Path.Combine(DemoCommand.DemoDirectory, "prompts", task + ".safetensors");

    public static LoadedModel Open() => EngineFactory.Open(Directory, "cpu");

    public static SymbolTokenizer Tokenizer() => (SymbolTokenizer)TokenizerLoader.Load(Directory);

    /// <summary>The first <paramref name="rows"/> rows of a demo data file.</summary>
    public static List<TokenizedExample> Rows(string file, int rows) => PretokenizedJsonl.Load(Data(file), 23, 28).Take(rows).ToList();
}

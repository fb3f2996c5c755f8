using System.CommandLine;
using System.Globalization;
using SoftPrompt.Models;
using SoftPrompt.Tuning;

namespace SoftPrompt.Cli.Commands;

/// <summary>`softprompt info [MODEL_DIR] [--prompt FILE]`: a model's sizes and a prompt's cost, or a prompt file's contents.</summary>
internal static class InfoCommand
{
    public static Command Create()
    {
        var model = new Argument<string?>("model") { Description = "Hugging Face checkpoint directory (config.json + safetensors or pytorch_model.bin)", Arity = ArgumentArity.ZeroOrOne };
        var promptLength = new Option<int>("--prompt-length") { Description = "Prompt length P to cost", DefaultValueFactory = _ => 100 }.NonNegative();
        var prompt = new Option<string?>("--prompt") { Description = "A prompt file to describe (its model is read from the file's metadata unless given)" };
        var command = new Command("info", "Describe a model and the size of a prompt for it, or a prompt file") { model, promptLength, prompt };
        command.SetAction(r => CliErrors.Run(() => Run(r.GetValue(model), r.GetValue(promptLength), r.GetValue(prompt))));
        return command;
    }

    private static readonly CultureInfo Inv = CultureInfo.InvariantCulture;

    private static int Run(string? modelDirectory, int promptLength, string? promptPath)
    {
        if (promptPath is not null) return DescribePrompt(promptPath, modelDirectory);
        if (modelDirectory is null) throw new ArgumentException("Give a model directory, or --prompt FILE.");
        var family = ModelFamily.Detect(modelDirectory);
        var config = family.LoadConfig(modelDirectory);
        // The weights must be there and fit the config (a missing or truncated file fails here, naming it): opening the
        // checkpoint validates every tensor's place in its file, and the fingerprint reads the embedding table at the config's shape.
        var (_, fingerprint) = Identify(modelDirectory);
        long parameters = config.ParameterCount, promptParameters = (long)promptLength * config.Embedding;
        Console.WriteLine($"model        {Path.GetFullPath(modelDirectory)}");
        foreach (var (label, text) in family.Describe(config)) Console.WriteLine($"{label,-12} {text}");
        Console.WriteLine($"parameters   {parameters.ToString("N0", Inv)} (frozen)");
        Console.WriteLine($"fingerprint  {fingerprint}");
        Console.WriteLine($"prompt P={promptLength}  {promptParameters.ToString("N0", Inv)} trainable parameters = {Percent(promptParameters, parameters)} of the model"
            + (family.IsEncoderDecoder ? " (prepended to the encoder input)" : ""));
        return 0;
    }

    /// <summary>The model's sizes and fingerprint, whatever its family (reads the embedding table, which the fingerprint hashes).</summary>
    private static (IModelConfig Config, string Fingerprint) Identify(string modelDirectory)
    {
        var table = TokenEmbeddingTable.Load(modelDirectory);
        return (table.Config, table.Fingerprint);
    }

    private static int DescribePrompt(string promptPath, string? modelDirectory)
    {
        var file = PromptFile.Load(promptPath);
        long parameters = (long)file.Length * file.Width;
        Console.WriteLine($"prompt       {Path.GetFullPath(promptPath)}");
        Console.WriteLine($"shape        {file.Length} vectors × {file.Width} = {parameters.ToString("N0", Inv)} parameters");
        modelDirectory ??= file.Metadata.TryGetValue("model_path", out var recorded) && Directory.Exists(recorded) ? recorded : null;
        if (modelDirectory is not null)
        {
            var (config, fingerprint) = Identify(modelDirectory);
            bool matches = !file.Metadata.TryGetValue(PromptFile.FingerprintKey, out var own) || own == fingerprint;
            Console.WriteLine($"model        {Path.GetFullPath(modelDirectory)} ({config.ParameterCount.ToString("N0", Inv)} parameters): the prompt is {Percent(parameters, config.ParameterCount)} of it");
            Console.WriteLine($"belongs      {(matches && file.Width == config.Embedding ? "yes" : "NO — trained for another model")}");
        }
        foreach (var (key, value) in file.Metadata.OrderBy(e => e.Key, StringComparer.Ordinal))
            Console.WriteLine($"  {key,-20} {value}");
        return 0;
    }

    private static string Percent(long part, long whole) => (100.0 * part / whole).ToString("0.####", Inv) + "%";
}

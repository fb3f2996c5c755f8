using System.CommandLine;
using System.Globalization;
using SoftPrompt.Models.Gpt2;

namespace SoftPrompt.Cli.Commands;

/// <summary>`softprompt info MODEL_DIR`: family, sizes, parameters, and what a prompt of length P costs.</summary>
internal static class InfoCommand
{
    public static Command Create()
    {
        var model = new Argument<string>("model") { Description = "Hugging Face checkpoint directory (config.json + safetensors)" };
        var promptLength = new Option<int>("--prompt-length") { Description = "Prompt length P to cost", DefaultValueFactory = _ => 100 };
        var command = new Command("info", "Describe a model and the size of a prompt for it") { model, promptLength };
        command.SetAction(result => CliErrors.Run(() => Run(result.GetValue(model)!, result.GetValue(promptLength))));
        return command;
    }

    private static int Run(string modelDirectory, int promptLength)
    {
        var config = Gpt2Config.Load(Path.Combine(modelDirectory, "config.json"));
        long parameters = config.ParameterCount, promptParameters = (long)promptLength * config.Embedding;
        var inv = CultureInfo.InvariantCulture;
        Console.WriteLine($"model        {Path.GetFullPath(modelDirectory)}");
        Console.WriteLine($"family       gpt2 ({config.Activation}, tied LM head)");
        Console.WriteLine($"layers       {config.Layers}");
        Console.WriteLine($"d_model      {config.Embedding} ({config.Heads} heads × {config.HeadSize})");
        Console.WriteLine($"mlp          {config.Inner}");
        Console.WriteLine($"vocab        {config.VocabSize}");
        Console.WriteLine($"positions    {config.MaxPositions}");
        Console.WriteLine($"parameters   {parameters.ToString("N0", inv)} (frozen)");
        Console.WriteLine($"prompt P={promptLength}  {promptParameters.ToString("N0", inv)} trainable parameters = {(100.0 * promptParameters / parameters).ToString("0.####", inv)}% of the model");
        return 0;
    }
}

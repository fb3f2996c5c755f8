using System.CommandLine;
using System.Globalization;
using SoftPrompt.Checkpoints;
using SoftPrompt.Cli.Files;

namespace SoftPrompt.Cli.Commands;

/// <summary>`softprompt convert DIR --out DIR2`: a model directory's weights (PyTorch .bin or safetensors) as one model.safetensors, without Python.</summary>
internal static class ConvertCommand
{
    public static Command Create()
    {
        var model = new Argument<string>("model") { Description = "Hugging Face model directory (pytorch_model.bin, its sharded index, or safetensors)" };
        var output = new Option<string>("--out") { Description = "New directory to write: model.safetensors plus config.json and the tokenizer files", Required = true };
        var command = new Command("convert", "Rewrite a model directory's PyTorch .bin weights as safetensors (no Python, no pickle code run)") { model, output };
        command.SetAction(r => CliErrors.Run(() => Run(r.GetValue(model)!, r.GetValue(output)!)));
        return command;
    }

    private static int Run(string model, string output)
    {
        // --out's parent must be writable; the converter itself refuses an --out that exists and is not empty (the model directory included).
        new RunFiles().InputDirectory("model", model).Output("--out", output).Check();
        var result = CheckpointConverter.Convert(model, output);
        string size = result.DataBytes >= 1_000_000
            ? (result.DataBytes / 1e6).ToString("0.0", CultureInfo.InvariantCulture) + " MB"
            : (result.DataBytes / 1e3).ToString("0.0", CultureInfo.InvariantCulture) + " kB";
        Console.WriteLine($"wrote {result.WeightsFile}: {result.TensorCount} tensors, {size}, from {string.Join(", ", result.SourceFiles)}");
        if (result.CopiedFiles.Count > 0) Console.WriteLine($"copied {string.Join(", ", result.CopiedFiles)}");
        return 0;
    }
}

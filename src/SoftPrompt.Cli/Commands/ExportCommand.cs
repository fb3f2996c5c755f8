using System.CommandLine;
using System.Globalization;
using SoftPrompt.Checkpoints;
using SoftPrompt.Cli.Files;
using SoftPrompt.Engines;
using SoftPrompt.Models;
using SoftPrompt.Tuning;

namespace SoftPrompt.Cli.Commands;

/// <summary>`softprompt export --format peft`: a prompt as a Hugging Face PEFT prompt-tuning adapter directory.</summary>
internal static class ExportCommand
{
    public static Command Create()
    {
        var prompt = new Option<string>("--prompt") { Description = "Prompt file (.safetensors)", Required = true };
        var format = new Option<string>("--format") { Description = "peft (adapter_model.safetensors + adapter_config.json)", DefaultValueFactory = _ => "peft" };
        format.AcceptOnlyFromAmong("peft");
        var output = new Option<string>("--out") { Description = "Adapter directory to write", Required = true };
        var model = new Option<string?>("--model") { Description = "The checkpoint the prompt was trained for: checked against the prompt, and the source of num_layers/num_attention_heads" };
        var baseModel = new Option<string?>("--base-model") { Description = "base_model_name_or_path to record, e.g. gpt2 (default: the model directory)" };
        var command = new Command("export", "Write a prompt in another tool's format") { prompt, format, output, model, baseModel };
        command.SetAction(r => CliErrors.Run(() => Run(r.GetValue(prompt)!, r.GetValue(output)!, r.GetValue(model), r.GetValue(baseModel))));
        return command;
    }

    private static int Run(string promptPath, string output, string? modelDirectory, string? baseModel)
    {
        var files = new RunFiles().Input("--prompt", promptPath).OutputDirectory("--out", output)
            .Output("--out", Path.Combine(output, PeftAdapter.WeightsFile)).Output("--out", Path.Combine(output, PeftAdapter.ConfigFile));
        if (modelDirectory is not null) files.InputDirectory("--model", modelDirectory);
        files.Check();
        var prompt = PromptFile.Load(promptPath);
        int layers, heads;
        string? modelPath;
        ModelFamily family;
        if (modelDirectory is not null)
        {
            using var loaded = EngineFactory.Open(modelDirectory, "cpu");
            prompt.CheckBelongsTo(promptPath, loaded.Config.Embedding, loaded.Fingerprint);
            (layers, heads, modelPath, family) = (loaded.Config.Layers, loaded.Config.Heads, loaded.Directory, loaded.Family);
        }
        else
        {
            layers = Int(prompt, "model_layers", promptPath);
            heads = Int(prompt, "model_heads", promptPath);
            modelPath = prompt.Metadata.GetValueOrDefault("model_path");
            // Prompt files from before T5 carry no family; they were all GPT-2's.
            family = prompt.Metadata.TryGetValue(PromptFile.FamilyKey, out var recorded) ? ModelFamily.FromName(recorded) : ModelFamily.Gpt2;
        }
        string name = baseModel ?? modelPath ?? throw new ArgumentException($"{promptPath}: the prompt does not say which model it belongs to; give --base-model NAME (e.g. gpt2) or --model DIR.");
        InitSpec init;
        try { init = InitSpec.Parse(prompt.Metadata.GetValueOrDefault("init", "random-uniform")); }
        catch (ArgumentException) { init = InitSpec.RandomUniform; }
        string taskType = family.PeftTaskType;
        PeftAdapter.Export(prompt, output, new PeftExportSettings(name, layers, heads, taskType, init));
        Console.WriteLine($"wrote {Path.Combine(output, PeftAdapter.WeightsFile)} (prompt_embeddings [{prompt.Length}, {prompt.Width}]) and {Path.Combine(output, PeftAdapter.ConfigFile)} (PROMPT_TUNING {taskType}, base model {name})");
        string auto = taskType == PeftAdapter.Seq2SeqLm ? "AutoModelForSeq2SeqLM" : "AutoModelForCausalLM";
        Console.WriteLine($"load it with: PeftModel.from_pretrained({auto}.from_pretrained(\"{name}\"), \"{output}\")");
        if (taskType == PeftAdapter.Seq2SeqLm)
            Console.WriteLine("num_transformer_submodules is 1: PEFT prepends the prompt to the encoder input only, as SoftPrompt trained it (PEFT's default of 2 would also prompt the decoder).");
        return 0;
    }

    private static int Int(PromptFile prompt, string key, string path) =>
        prompt.Metadata.TryGetValue(key, out var text) && int.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out int value)
            ? value
            : throw new CheckpointException($"{path}: the prompt file does not record \"{key}\" (it predates the export format or was imported); give --model DIR so the adapter config can name the model's shape.");
}

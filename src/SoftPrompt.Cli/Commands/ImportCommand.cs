using System.CommandLine;
using SoftPrompt.Checkpoints;
using SoftPrompt.Cli.Files;
using SoftPrompt.Engines;
using SoftPrompt.Tuning;

namespace SoftPrompt.Cli.Commands;

/// <summary>`softprompt import --peft DIR`: a Hugging Face PEFT prompt-tuning adapter as a SoftPrompt prompt file.</summary>
internal static class ImportCommand
{
    public static Command Create()
    {
        var peft = new Option<string>("--peft") { Description = "PEFT adapter directory (adapter_config.json + adapter_model.safetensors)", Required = true };
        var output = new Option<string>("--out") { Description = "Prompt file to write (.safetensors)", Required = true };
        var model = new Option<string?>("--model") { Description = "The checkpoint the prompt is for: its width is checked and its fingerprint recorded, so the prompt can never be used with another model" };
        var command = new Command("import", "Read a prompt from another tool's format") { peft, output, model };
        command.SetAction(r => CliErrors.Run(() => Run(r.GetValue(peft)!, r.GetValue(output)!, r.GetValue(model))));
        return command;
    }

    private static int Run(string directory, string output, string? modelDirectory)
    {
        var files = new RunFiles().InputDirectory("--peft", directory).Output("--out", output);
        if (modelDirectory is not null) files.InputDirectory("--model", modelDirectory);
        files.Check();
        var prompt = PeftAdapter.Import(directory);
        var metadata = new Dictionary<string, string>(prompt.Metadata);
        if (modelDirectory is not null)
        {
            using var loaded = EngineFactory.Open(modelDirectory, "cpu");
            if (prompt.Width != loaded.Config.Embedding)
                throw new CheckpointException($"{directory}: the adapter's prompt vectors are {prompt.Width} wide (token_dim) but {modelDirectory} embeds in {loaded.Config.Embedding}; it was trained for another model.");
            if (prompt.Length >= loaded.Config.MaxPositions)
                throw new CheckpointException($"{directory}: {prompt.Length} virtual tokens leave no room for input within the model's n_positions {loaded.Config.MaxPositions}.");
            prompt.CheckBelongsTo(directory, loaded.Config.Embedding, loaded.Fingerprint);
            // Other task types (SEQ_CLS, FEATURE_EXTRACTION …) still hold an input prompt; only the two LM types say which architecture.
            string? taskType = prompt.Metadata.GetValueOrDefault(PeftAdapter.TaskTypeKey);
            if (taskType is PeftAdapter.CausalLm or PeftAdapter.Seq2SeqLm && taskType != loaded.Family.PeftTaskType)
                throw new CheckpointException($"{directory}: the adapter's task_type is {taskType} but {modelDirectory} is a {loaded.Family.Name} model ({loaded.Family.PeftTaskType}); it was trained for another kind of model.");
            metadata[PromptFile.FamilyKey] = loaded.Family.Name;
            metadata[PromptFile.FingerprintKey] = loaded.Fingerprint;
            metadata["model_path"] = loaded.Directory;
            metadata["model_layers"] = loaded.Config.Layers.ToString(System.Globalization.CultureInfo.InvariantCulture);
            metadata["model_heads"] = loaded.Config.Heads.ToString(System.Globalization.CultureInfo.InvariantCulture);
        }
        new PromptFile(prompt.Values, prompt.Length, prompt.Width, metadata).Save(output);
        if (metadata.TryGetValue(PeftAdapter.DroppedDecoderRowsKey, out var dropped))
            Console.WriteLine($"note: the adapter has 2 transformer submodules; kept its {prompt.Length} encoder rows and dropped the {dropped} decoder rows " +
                "(PEFT's generate() uses only the encoder rows, its forward() also prepends the decoder rows to the decoder input; SoftPrompt prompts the encoder only).");
        Console.WriteLine($"wrote {output}: prompt [{prompt.Length}, {prompt.Width}] from {directory}" +
            (modelDirectory is null ? " (not tied to a model: pass --model DIR to check its shape and record the model's fingerprint)" : $", for model {metadata[PromptFile.FingerprintKey]}"));
        return 0;
    }
}

using System.CommandLine;
using System.Globalization;
using SoftPrompt.Engines;
using SoftPrompt.Text;
using SoftPrompt.Tuning;

namespace SoftPrompt.Cli.Commands;

/// <summary>`softprompt train`: prompt-tune a frozen model on pre-tokenized JSONL rows.</summary>
internal static class TrainCommand
{
    public static Command Create()
    {
        var model = new Option<string>("--model") { Description = "Hugging Face checkpoint directory", Required = true };
        var data = new Option<string>("--data") { Description = "JSONL rows {\"input_ids\":[…],\"target_ids\":[…]}", Required = true };
        var promptLength = new Option<int?>("--prompt-length") { Description = "Prompt vectors P (default 20, or the --init file's length)" };
        var steps = new Option<int>("--steps") { Description = "Optimizer steps", DefaultValueFactory = _ => 100 };
        var batchSize = new Option<int>("--batch-size") { Description = "Rows per step", DefaultValueFactory = _ => 8 };
        var lr = new Option<float>("--lr") { Description = "Learning rate", DefaultValueFactory = _ => 0.3f };
        var optimizer = new Option<string>("--optimizer") { Description = "sgd | adamw | adafactor", DefaultValueFactory = _ => "adamw" };
        optimizer.AcceptOnlyFromAmong("sgd", "adamw", "adafactor");
        var seed = new Option<int>("--seed") { Description = "Seed for initialisation and shuffling", DefaultValueFactory = _ => 0 };
        var noShuffle = new Option<bool>("--no-shuffle") { Description = "Take rows in file order" };
        var init = new Option<string>("--init") { Description = "random (uniform ±0.5) or FILE.safetensors", DefaultValueFactory = _ => "random" };
        var output = new Option<string>("--out") { Description = "Where to write the trained prompt (.safetensors)", Required = true };
        var device = new Option<string>("--device") { Description = "cpu", DefaultValueFactory = _ => EngineFactory.DefaultDevice };
        var clipNorm = new Option<float>("--clip-norm") { Description = "Clip the gradient's global L2 norm (0 = off)" };
        var weightDecay = new Option<float>("--weight-decay") { Description = "Decoupled weight decay (AdamW) or L2 (SGD)" };
        var command = new Command("train", "Prompt-tune a frozen model")
        {
            model, data, promptLength, steps, batchSize, lr, optimizer, seed, noShuffle, init, output, device, clipNorm, weightDecay,
        };
        command.SetAction(r => CliErrors.Run(() => Run(new Settings(
            r.GetValue(model)!, r.GetValue(data)!, r.GetValue(promptLength), r.GetValue(steps), r.GetValue(batchSize), r.GetValue(lr),
            r.GetValue(optimizer)!, r.GetValue(seed), !r.GetValue(noShuffle), r.GetValue(init)!, r.GetValue(output)!, r.GetValue(device)!,
            r.GetValue(clipNorm), r.GetValue(weightDecay)))));
        return command;
    }

    private sealed record Settings(string Model, string Data, int? PromptLength, int Steps, int BatchSize, float LearningRate, string Optimizer,
        int Seed, bool Shuffle, string Init, string Output, string Device, float ClipNorm, float WeightDecay);

    private static int Run(Settings s)
    {
        var inv = CultureInfo.InvariantCulture;
        using var loaded = EngineFactory.Open(s.Model, s.Device);
        var engine = loaded.Engine;
        float[] prompt = PromptInitializer.Create(s.Init, s.PromptLength, loaded, s.Seed, out int promptLength);
        engine.LoadPrompts(prompt, 1, promptLength);
        var examples = PretokenizedJsonl.Load(s.Data, engine.VocabSize, engine.MaxPositions - promptLength);
        var optimizer = new OptimizerSettings(s.Optimizer switch { "sgd" => OptimizerKind.Sgd, "adafactor" => OptimizerKind.Adafactor, _ => OptimizerKind.AdamW }, WeightDecay: s.WeightDecay, ClipNorm: s.ClipNorm);
        Console.WriteLine($"training P={promptLength} prompt on {examples.Count} rows, {s.Steps} steps × batch {s.BatchSize}, {s.Optimizer} lr {s.LearningRate.ToString(inv)}, device {engine.DeviceName}");
        int every = Math.Max(1, s.Steps / 20);
        long tokens = 0;
        float lastLoss = float.NaN;
        PromptTrainer.Train(engine, examples, new TrainOptions(s.Steps, s.BatchSize, s.LearningRate, optimizer, s.Seed, s.Shuffle), p =>
        {
            tokens += p.Tokens;
            lastLoss = p.Loss;
            if (p.Step % every == 0 || p.Step == p.Steps || p.Step == 1)
                Console.WriteLine(string.Create(inv, $"step {p.Step,5}/{p.Steps}  loss {p.Loss:F4}  |g| {p.GradientNorm:E2}  {tokens / Math.Max(1e-9, p.Seconds):F0} tok/s"));
        });
        engine.ReadPrompts(prompt);
        new PromptFile(prompt, promptLength, engine.EmbeddingSize, new Dictionary<string, string>
        {
            [PromptFile.FamilyKey] = loaded.Family,
            [PromptFile.FingerprintKey] = loaded.Fingerprint,
            ["model_path"] = loaded.Directory,
            ["init"] = s.Init,
            ["optimizer"] = s.Optimizer,
            ["learning_rate"] = s.LearningRate.ToString(inv),
            ["seed"] = s.Seed.ToString(inv),
            ["step"] = s.Steps.ToString(inv),
            ["train_loss"] = lastLoss.ToString("R", inv),
        }).Save(s.Output);
        Console.WriteLine($"wrote {s.Output}");
        return 0;
    }
}

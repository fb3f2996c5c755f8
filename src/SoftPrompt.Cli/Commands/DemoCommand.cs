using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using SoftPrompt.Cli.Files;
using SoftPrompt.Engines;
using SoftPrompt.Models;
using SoftPrompt.Text;
using SoftPrompt.Tuning;

namespace SoftPrompt.Cli.Commands;

/// <summary>
/// `softprompt demo`: on a bundled tiny model (GPT-2 by default, T5 with --model-family t5, Llama with --model-family llama;
/// all pretrained on the same synthetic language where a task token picks copy / reverse / sort / majority), tune soft prompts that
/// stand in for the task token — the tuning data never contains it — and compare their dev accuracy with the real
/// task token's.
/// </summary>
internal static class DemoCommand
{
    public static Command Create()
    {
        var family = new Option<string>("--model-family")
        {
            Description = string.Join(" | ", ModelFamily.All.Select(f => $"{f.Name} ({f.Summary})")),
            DefaultValueFactory = _ => ModelFamily.Gpt2.Name,
        };
        family.AcceptOnlyFromAmong([.. ModelFamily.All.Select(f => f.Name)]);
        var tasks = new Option<string?>("--tasks") { Description = "Comma-separated subset of copy,reverse,sort,majority" };
        var steps = new Option<int?>("--steps") { Description = "Override the recipe's step count" }.Positive();
        var seed = new Option<int>("--seed") { DefaultValueFactory = _ => 0 };
        var outDir = new Option<string?>("--out-dir") { Description = "Write each tuned prompt here as <task>.safetensors" };
        var engineFlags = new EngineFlags();
        var command = new Command("demo", "Prompt-tune a bundled tiny model and compare with its task tokens") { family, tasks, steps, seed, outDir };
        engineFlags.AddTo(command);
        command.SetAction(r => CliErrors.Run(() =>
        {
            string modelFamily = r.GetValue(family)!;
            string chosen = engineFlags.ReadDevice(r);
            return Run(DirectoryOf(modelFamily), chosen, r.GetValue(tasks), r.GetValue(steps), r.GetValue(seed), r.GetValue(outDir), engineFlags.Read(r));
        }));
        return command;
    }

    /// <summary>The GPT-2 demo (model/, data/, prompts/, tasks.json); the T5 and Llama demos sit in its t5/ and llama/ folders and reuse data/.</summary>
    public static string DemoDirectory => Path.Combine(AppContext.BaseDirectory, "Demo");

    /// <summary>The demo directory of the family called <paramref name="family"/> (<see cref="ModelFamily.DemoFolder"/>).</summary>
    public static string DirectoryOf(string family) => Path.Combine(DemoDirectory, ModelFamily.FromName(family).DemoFolder);

    private static int Run(string demoDirectory, string device, string? taskFilter, int? stepsOverride, int seed, string? outDir, EngineOptions options)
    {
        var inv = CultureInfo.InvariantCulture;
        using var manifest = JsonDocument.Parse(File.ReadAllText(Path.Combine(demoDirectory, "tasks.json")));
        string modelDirectory = Path.Combine(demoDirectory, manifest.RootElement.TryGetProperty("model", out var m) ? m.GetString()! : "model");
        // The tuned prompts are only written at the end: a directory they cannot go to is found before the tuning.
        new RunFiles().InputDirectory("--model-family", modelDirectory).OutputDirectory("--out-dir", outDir).Check();
        using var model = EngineFactory.Open(modelDirectory, device, options);
        var engine = model.Engine;
        int width = model.Config.Embedding;
        var wanted = taskFilter?.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).ToHashSet();
        var known = manifest.RootElement.GetProperty("tasks").EnumerateArray().Select(t => t.GetProperty("name").GetString()!).ToList();
        if (wanted is not null && (wanted.Count == 0 || wanted.Except(known).Any()))
            throw new ArgumentException($"--tasks {taskFilter}: {(wanted.Count == 0 ? "no task named" : $"unknown task {string.Join(", ", wanted.Except(known))}")}; choose from {string.Join(", ", known)}.");
        Console.WriteLine($"SoftPrompt demo: tiny {model.Family.Outline(model.Config)} on device {EngineFlags.Describe(engine.DeviceName, options.Precision)}");
        Console.WriteLine("Soft prompts replace the task token; the tuning data never contains it.");
        Console.WriteLine();
        Console.WriteLine($"{"task",-10} {"task token",10} {"untuned",8} {"tuned",8} {"tuned/token",12} {"steps",6} {"seconds",8}  nearest token to each tuned prompt vector");
        var vocabulary = SymbolNames(Path.Combine(modelDirectory, "vocab.json"));
        int passing = 0, total = 0;
        foreach (var task in manifest.RootElement.GetProperty("tasks").EnumerateArray())
        {
            string name = task.GetProperty("name").GetString()!;
            if (wanted is not null && !wanted.Contains(name)) continue;
            var recipe = task.GetProperty("recipe");
            int promptLength = recipe.GetProperty("prompt_length").GetInt32();
            int steps = stepsOverride ?? recipe.GetProperty("steps").GetInt32();
            int batchSize = recipe.GetProperty("batch_size").GetInt32();
            float lr = recipe.GetProperty("lr").GetSingle();
            float range = recipe.GetProperty("init_range").GetSingle();
            int maxTokens = engine.MaxPositions - promptLength;
            var train = PretokenizedJsonl.Load(Path.GetFullPath(Path.Combine(demoDirectory, task.GetProperty("train").GetString()!)), engine.VocabSize, maxTokens);
            var dev = PretokenizedJsonl.Load(Path.GetFullPath(Path.Combine(demoDirectory, task.GetProperty("dev").GetString()!)), engine.VocabSize, maxTokens);

            // The task token as a prompt: the embeddings of [<fill>…, TASK] at the same positions.
            int filler = task.GetProperty("filler_id").GetInt32(), taskToken = task.GetProperty("task_token_id").GetInt32();
            var tokenPrompt = new float[promptLength * width];
            for (int p = 0; p < promptLength; p++)
                model.TokenEmbedding.AsSpan((p == promptLength - 1 ? taskToken : filler) * width, width).CopyTo(tokenPrompt.AsSpan(p * width, width));
            engine.LoadPrompts(tokenPrompt, 1, promptLength);
            double tokenAccuracy = Evaluator.ExactMatch(engine, dev).Accuracy;

            var random = new Random(seed);
            var prompt = new float[promptLength * width];
            for (int i = 0; i < prompt.Length; i++) prompt[i] = (float)((random.NextDouble() * 2 - 1) * range);
            engine.LoadPrompts(prompt, 1, promptLength);
            double untuned = Evaluator.ExactMatch(engine, dev).Accuracy;

            var clock = Stopwatch.StartNew();
            PromptTrainer.Train(engine, train, new TrainOptions(steps, batchSize, lr, new OptimizerSettings(OptimizerKind.AdamW), seed));
            double tuned = Evaluator.ExactMatch(engine, dev).Accuracy;
            double seconds = clock.Elapsed.TotalSeconds;
            double ratio = tokenAccuracy > 0 ? tuned / tokenAccuracy : 0;
            total++;
            if (ratio >= 0.9) passing++;
            engine.ReadPrompts(prompt);
            string nearest = string.Join(" ", PromptNeighbors.Find(prompt, model.TokenEmbedding, width, 1).Select(n => vocabulary[n.Nearest[0].TokenId]));
            Console.WriteLine(string.Create(inv, $"{name,-10} {tokenAccuracy,10:P1} {untuned,8:P1} {tuned,8:P1} {ratio,12:P1} {steps,6} {seconds,8:F1}  {nearest}"));
            if (outDir is not null)
            {
                Directory.CreateDirectory(outDir);
                new PromptFile(prompt, promptLength, width, new Dictionary<string, string>
                {
                    [PromptFile.FamilyKey] = model.Family.Name,
                    [PromptFile.FingerprintKey] = model.Fingerprint,
                    ["task"] = name,
                    ["dev_accuracy"] = tuned.ToString("R", inv),
                    ["step"] = steps.ToString(inv),
                }).Save(Path.Combine(outDir, name + ".safetensors"));
            }
        }
        Console.WriteLine();
        Console.WriteLine($"{passing} of {total} tasks reach at least 90% of the task token's accuracy with a tuned soft prompt.");
        return 0;
    }

    private static Dictionary<int, string> SymbolNames(string vocabPath)
    {
        using var vocab = JsonDocument.Parse(File.ReadAllText(vocabPath));
        return vocab.RootElement.EnumerateObject().ToDictionary(e => e.Value.GetInt32(), e => e.Name);
    }
}

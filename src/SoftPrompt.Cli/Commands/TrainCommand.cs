using System.CommandLine;
using System.Globalization;
using System.Text.Json.Nodes;
using SoftPrompt.Checkpoints;
using SoftPrompt.Cli.Files;
using SoftPrompt.Cli.Output;
using SoftPrompt.Cli.Training;
using SoftPrompt.Distributed;
using SoftPrompt.Engines;
using SoftPrompt.Text;
using SoftPrompt.Tuning;

namespace SoftPrompt.Cli.Commands;

/// <summary>
/// `softprompt train`: prompt-tune a frozen model. Writes the prompt (--out; with --dev the best on dev, and the last
/// to OUT.last.safetensors), a metrics log (OUT.metrics.jsonl) and a PNG of the curves (OUT.curves.png); with
/// --checkpoint-dir, resumable checkpoints. Ctrl+C or SIGTERM stops after the current step, checkpoints and writes what it has
/// (exit 130 or 143).
/// With --ensemble K, K prompts train in the same passes and go to OUT.k0.safetensors … (OUT.k{k}.last.safetensors
/// beside them with --dev), and the run ends with the ensemble's dev scores.
/// Under mpirun or srun every process trains its shard of each batch (<see cref="TrainingRun"/>) and scores its share of
/// the --dev rows; rank 0 alone prints, resumes and writes files.
/// </summary>
internal static class TrainCommand
{
    public static Command Create()
    {
        var flags = new TrainFlags();
        var command = new Command("train", "Prompt-tune a frozen model");
        foreach (var option in flags.All) command.Options.Add(option);
        command.SetAction(r => CliErrors.Run(() =>
        {
            var plan = flags.Resolve(r);
            return GroupRun.Run(group =>
            {
                // Before the model loads: `cuda` over several processes needs libnccl.
                var collective = CollectiveChoice.For(plan.Device, group.Size);
                if (!plan.DryRun) return Run(plan, group);
                GroupRun.Describe(group, plan.Options.BatchSize, collective, Console.Out);
                return 0;
            });
        }));
        return command;
    }

    private static int Run(TrainPlan plan, IProcessGroup group)
    {
        var inv = CultureInfo.InvariantCulture;
        bool writer = group.Rank == 0;
        TextWriter human = !writer ? TextWriter.Null : plan.Json ? Console.Error : Console.Out;
        if (writer) Files(plan).Check();
        using var outputLock = writer ? RunLock.Acquire(TrainPlan.Stem(plan.Output) + ".lock", "--out", plan.Output) : null;
        using var checkpointLock = plan.CheckpointDir is null || !writer ? null : RunLock.Acquire(Path.Combine(plan.CheckpointDir, "softprompt.lock"), "--checkpoint-dir", plan.CheckpointDir);
        // An explicit --metrics or --plot path lies outside --out's prefix: two runs naming the same one would interleave or overwrite it.
        string outputStem = TrainPlan.Stem(plan.Output) + ".";
        using var metricsLock = writer && !plan.MetricsPath.StartsWith(outputStem, StringComparison.Ordinal) ? RunLock.Acquire(plan.MetricsPath + ".lock", "--metrics", plan.MetricsPath) : null;
        using var plotLock = writer && plan.PlotPath is { } curves && !curves.StartsWith(outputStem, StringComparison.Ordinal) ? RunLock.Acquire(curves + ".lock", "--plot", curves) : null;
        using var loaded = EngineFactory.Open(plan.Model, plan.Device, new EngineOptions(plan.Precision, plan.Recomputation));
        var engine = loaded.Engine;
        int width = engine.EmbeddingSize;
        ITextTokenizer? tokenizer = null;
        ITextTokenizer Tokenizer() => tokenizer ??= TokenizerLoader.Load(loaded.Directory);

        int promptLength = PromptInitializer.ResolveLength(plan.Init, plan.PromptLength, width, loaded.Fingerprint);
        var train = DataOptions.Load(plan.Data, plan.Columns, Tokenizer, loaded, promptLength, human);
        var dev = plan.Dev is null ? null : DataOptions.Load(plan.Dev, plan.Columns, Tokenizer, loaded, promptLength, human);

        var init = plan.Init;
        if (init.Kind == InitKind.ClassLabels && train.Classification is null && plan.InitFromRecipe)
        {
            human.WriteLine($"recipe {plan.Recipe!.Name}: the data has no --labels, so the prompt starts from sampled vocabulary instead of class labels");
            init = InitSpec.SampledVocab;
        }
        var labels = plan.Columns.HasMapping ? plan.Columns.Mapping()!.Labels : null;
        var sources = new InitSources
        {
            TrainingData = train.Examples,
            LabelTokens = init.Kind == InitKind.ClassLabels && labels is not null ? DataOptions.LabelTokens(labels, Tokenizer(), plan.Columns.TargetPrefix) : null,
            Tokenizer = init.Kind == InitKind.Text ? Tokenizer() : null,
            VocabIsFrequencyOrdered = plan.VocabIsFrequencyOrdered,
            Excluded = init.Kind is InitKind.SampledVocab or InitKind.ClassLabels ? SpecialIds(Tokenizer) : new HashSet<int>(),
            Seed = plan.Options.Seed,
            ModelFingerprint = loaded.Fingerprint,
        };
        int ensemble = plan.Ensemble;
        engine.LoadPrompts(PromptInitializer.CreateEnsemble(init, ensemble, promptLength, loaded.TokenEmbedding, width, sources), ensemble, promptLength);

        var metadata = PromptMetadata.ForRun(loaded, plan, init, promptLength);
        var store = plan.CheckpointDir is null || !writer ? null : new CheckpointStore(plan.CheckpointDir, plan.KeepLast);
        int? stopToken = plan.Dev is not null && DataOptions.IsText(plan.Dev) ? DataOptions.TryTokenizer(Tokenizer)?.EosId : null;
        var evaluator = dev is null ? null : new DevEvaluator(dev.Examples, dev.Classification, plan.EvalBatchSize) { StopToken = stopToken, Processes = group };
        using var run = new TrainingRun(engine, train.Examples, plan.Options, group) { Dev = evaluator, Checkpoints = store, PromptMetadata = metadata };
        int? resumedFrom = Resume(run, store, plan, human);
        // The ensemble's own dev report at the end: the prompts --out holds (the best step's, else the last), each alone and
        // combined; every rank scores its share.
        EnsembleEvaluation? EnsembleDev(float[] prompts)
        {
            if (ensemble == 1 || dev is null) return null;
            engine.LoadPrompts(prompts, ensemble, promptLength);
            return EnsembleCommand.Evaluate(engine, dev, stopToken, plan.EvalBatchSize, group);
        }
        if (resumedFrom == plan.Options.Steps)
        {
            // Nothing to train: the outputs were written when the run finished and are left as they are.
            string complete = $"the run in {plan.CheckpointDir} is complete (step {resumedFrom} of {plan.Options.Steps}); {plan.Output} was written when it finished. " +
                "Raise --steps to train further.";
            if (group.Size > 1) throw new ArgumentException(complete);
            human.WriteLine(complete);
            return 0;
        }

        var o = plan.Options;
        string processes = group.Size == 1 ? "" : $", {group.Size} processes ({group.Launcher}; batch split {BatchShard.Describe(o.BatchSize, group.Size)}{(dev is null ? "" : "; dev rows shared out in whole evaluation batches")})";
        human.WriteLine(string.Create(inv,
            $"training {(ensemble > 1 ? $"an ensemble of {ensemble} " : "")}P={promptLength} prompt{(ensemble > 1 ? "s" : "")} ({init}{(ensemble > 1 ? $", seeds {o.Seed}..{o.Seed + ensemble - 1}" : "")}) on {train.Examples.Count} rows{(dev is null ? "" : $", dev {dev.Examples.Count} rows ({(evaluator!.IsClassification ? "rank classification" : "exact match")}, every {o.EvalEvery} steps)")}, " +
            $"{o.Steps} steps × batch {o.BatchSize}{(o.GradientAccumulation > 1 ? $" × {o.GradientAccumulation} micro-batches" : "")}, {plan.OptimizerName} lr {o.LearningRate} {o.Schedule}, device {engine.DeviceName}{processes}"));
        if (!writer) return TrainQuietly(run, best => EnsembleDev(best ?? run.CurrentPrompt()));

        TrainResult result;
        double tokensPerSecond;
        int stoppedExitCode;
        using (var log = resumedFrom is int from ? MetricsLog.Resume(plan.MetricsPath, from) : MetricsLog.Create(plan.MetricsPath))
        {
            var progress = new ProgressLine(human, plan.Progress, Math.Max(1, o.Steps / 20));
            var console = new TrainingConsole(progress, log, best => PromptMetadata.SaveAll(plan.PromptPath, best.Values, ensemble, promptLength, width, metadata, o.Seed,
                best.Step, "best-dev", best.Metrics, float.NaN));
            using (var signals = new StopSignals())
            {
                try { result = run.Run(console, signals.Token); }
                finally { progress.Finish(); }
                stoppedExitCode = signals.ExitCode;
            }
            tokensPerSecond = console.TokensPerSecond;
        }

        // Outputs: with dev data --out is the best prompt and the last goes beside it; without, --out is the last.
        string LastPath(int k) => plan.LastPromptPath(k) ?? plan.PromptPath(k);
        var lastPrompts = run.CurrentPrompt();
        PromptMetadata.SaveAll(LastPath, lastPrompts, ensemble, promptLength, width, metadata, o.Seed, result.Step, "last", null, result.LastLoss);
        if (plan.Dev is not null && result.Best is { } chosen)
            PromptMetadata.SaveAll(plan.PromptPath, chosen.Values, ensemble, promptLength, width, metadata, o.Seed, chosen.Step, "best-dev", chosen.Metrics, float.NaN);
        string? plot = DrawCurves(plan, evaluator, promptLength, human);

        var ensembleDev = EnsembleDev(result.Best?.Values ?? lastPrompts);

        var stop = result.Stop switch { TrainStop.EarlyStopped => "early_stopped", TrainStop.Interrupted => "interrupted", _ => "completed" };
        if (plan.Json)
        {
            var document = new JsonObject
            {
                ["out"] = plan.Dev is null || result.Best is not null ? plan.Output : null,
                ["last"] = LastPath(0),
                ["metrics"] = plan.MetricsPath,
                ["plot"] = plot,
                ["checkpoint"] = result.LastCheckpoint,
                ["stop"] = stop,
                ["steps"] = result.Step,
                ["resumed_from"] = resumedFrom,
                ["train_loss"] = JsonOutput.Number(result.LastLoss),
                ["seconds"] = JsonOutput.Number(result.Seconds),
                ["tokens_per_second"] = JsonOutput.Number(tokensPerSecond),
                ["prompt_length"] = promptLength,
                ["init"] = init.ToString(),
                ["device"] = engine.DeviceName,
                ["best"] = result.Best is { } b ? new JsonObject { ["step"] = b.Step, ["primary"] = b.Metrics.Primary, ["metrics"] = JsonOutput.Metrics(b.Metrics.Values) } : null,
            };
            if (ensemble > 1) EnsembleRunReport.AddTo(document, plan, LastPath, result.Best is not null, ensembleDev);
            JsonOutput.Write(document);
        }
        human.WriteLine(string.Create(inv, $"{stop.Replace('_', ' ')}: step {result.Step}/{o.Steps} in {result.Seconds:F1} s ({tokensPerSecond:N0} tok/s), train loss {result.LastLoss:F4}"));
        string outputs = EnsembleRunReport.Outputs(plan, last: false);
        if (result.Best is { } best)
            human.WriteLine(string.Create(inv, $"best dev {(ensemble > 1 ? "ensemble (majority vote) " : "")}{best.Metrics.Primary} {best.Metrics.Score:0.####} at step {best.Step} → {outputs}"));
        if (ensembleDev is not null) EnsembleRunReport.WriteTable(human, plan, ensembleDev);
        human.WriteLine($"wrote {EnsembleRunReport.Outputs(plan, last: true)}{(plan.LastOutput is null ? "" : " (last)")}, {plan.MetricsPath}{(plot is null ? "" : ", " + plot)}");
        return result.Stop == TrainStop.Interrupted ? stoppedExitCode : 0;
    }

    /// <summary>A rank other than 0: its share of every step and of the dev rows (<paramref name="scoreDev"/>: the ensemble's final dev scores, given the best prompts), no progress, no files.</summary>
    private static int TrainQuietly(TrainingRun run, Action<float[]?> scoreDev)
    {
        using var signals = new StopSignals();
        var result = run.Run(null, signals.Token);
        scoreDev(result.Best?.Values);
        return result.Stop == TrainStop.Interrupted ? signals.ExitCode : 0;
    }

    private static RunFiles Files(TrainPlan plan)
    {
        var files = new RunFiles().InputDirectory("--model", plan.Model).Input("--data", plan.Data).Input("--dev", plan.Dev)
            .Input("--init", plan.Init.Kind == InitKind.File ? plan.Init.Argument : null);
        for (int k = 0; k < plan.Ensemble; k++) files.Output("--out", plan.PromptPath(k)).Output("--out", plan.LastPromptPath(k));
        return files.Output("--metrics", plan.MetricsPath).Output("--plot", plan.PlotPath).OutputDirectory("--checkpoint-dir", plan.CheckpointDir);
    }

    /// <summary>Restores the newest checkpoint when --resume asks; refuses to mix a fresh run into a directory that holds another run's checkpoints.</summary>
    private static int? Resume(TrainingRun run, CheckpointStore? store, TrainPlan plan, TextWriter human)
    {
        if (store is null) return null;
        if (!plan.Resume)
        {
            if (store.List().Count > 0)
                throw new ArgumentException($"{store.Directory} already holds checkpoints; add --resume to continue that run, or choose an empty --checkpoint-dir.");
            return null;
        }
        var checkpoint = store.LoadLatest(warning => human.WriteLine($"warning: {warning}"), out string? path);
        if (checkpoint is null)
        {
            int damaged = store.List().Count;
            if (damaged > 0)
                throw new CheckpointException($"{store.Directory}: all {damaged} checkpoints are damaged (see the warnings above), so the run cannot resume; " +
                    "restore a good copy, or remove them to start over at step 0.");
            human.WriteLine($"no checkpoint in {store.Directory} yet; starting at step 0");
            return null;
        }
        run.Resume(checkpoint, path!);
        human.WriteLine($"resumed from {path} at step {checkpoint.Step}");
        return checkpoint.Step;
    }

    private static string? DrawCurves(TrainPlan plan, DevEvaluator? evaluator, int promptLength, TextWriter human)
    {
        if (plan.PlotPath is null) return null;
        try
        {
            CurvePlot.Save(MetricsLog.Read(plan.MetricsPath), plan.PlotPath, evaluator?.Primary, $"{Path.GetFileName(plan.Output)}: P={promptLength}, {plan.OptimizerName}");
            return plan.PlotPath;
        }
        catch (Exception e) when (e is InvalidOperationException or IOException or UnauthorizedAccessException or CheckpointException or DllNotFoundException or TypeInitializationException)
        {
            // The curves are a convenience: the prompt and the log are written, so a plotting problem only warns.
            human.WriteLine($"warning: could not draw {plan.PlotPath}: {e.Message}");
            return null;
        }
    }

    /// <summary>The tokenizer's BOS/EOS/PAD ids, never sampled as prompt vectors; none when the model ships no tokenizer.</summary>
    private static HashSet<int> SpecialIds(Func<ITextTokenizer> tokenizer)
    {
        try
        {
            var t = tokenizer();
            return [.. new[] { t.BosId, t.EosId, t.PadId }.OfType<int>()];
        }
        catch (DataException)
        {
            return [];
        }
    }
}

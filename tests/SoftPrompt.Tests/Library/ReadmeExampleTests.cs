using SoftPrompt.Engines;
using SoftPrompt.Tests.Tuning;
using SoftPrompt.Text;
using SoftPrompt.Tuning;

namespace SoftPrompt.Tests.Library;

/// <summary>The README's "Use as a library" example, verbatim but for the paths, so the README stays true.</summary>
public sealed class ReadmeExampleTests
{
    [Test]
    public void TheReadmeExampleRunsAndTrains()
    {
        string modelDir = DemoModel.Directory;
        var rows = PretokenizedJsonl.Load(DemoModel.Data("reverse.train.jsonl"), 23, 28).Take(16).ToList();

        // --- README example begins ---
        using var model = EngineFactory.Open(modelDir, "cpu");            // or "cuda"
        var engine = model.Engine;
        int d = engine.EmbeddingSize;

        // Two tasks' prompts of different lengths, packed [ΣP, d]; each batch row names its prompt.
        var layout = new PromptLayout([4, 8]);
        var random = new Random(0);
        var prompts = new float[layout.ValueCount(d)];
        for (int i = 0; i < prompts.Length; i++) prompts[i] = (float)(random.NextDouble() - 0.5);
        engine.LoadPrompts(prompts, layout);

        var batch = new TokenBatch(rowCapacity: 16, tokenCapacity: 32, layout);  // sized once, refilled every step
        var adamw = new OptimizerSettings(OptimizerKind.AdamW, ClipNorm: 1f);
        float first = 0, last = 0;
        for (int step = 1; step <= 20; step++)
        {
            batch.Reset(rows.Max(r => r.Length));
            for (int i = 0; i < rows.Count; i++) batch.AddRow(rows[i].Input, rows[i].Target, promptIndex: i % 2);
            last = engine.ForwardBackward(batch);                          // mean loss; dLoss/dPrompts on the engine
            engine.OptimizerStep(adamw, step, learningRate: 0.1f);         // each prompt clipped by its own norm
            if (step == 1) first = last;
        }
        engine.ReadPrompts(prompts);                                       // the trained prompts, packed as loaded
        // --- README example ends ---

        Assert.That(last, Is.LessThan(0.8f * first), $"the loss fell ({first:F3} → {last:F3})");
        Assert.That(prompts, Has.Some.Not.EqualTo(0f));
    }
}

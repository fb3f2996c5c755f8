using SoftPrompt.Distributed;
using SoftPrompt.Tuning;

namespace SoftPrompt.Tests.Tuning;

/// <summary>Issue 16's pieces that need no MPI: the split of a batch over ranks, the launcher's environment, the sampler's shards.</summary>
public sealed class DataParallelPartsTests
{
    [TestCase(6, 2, new[] { 3, 3 })]
    [TestCase(5, 3, new[] { 1, 2, 2 })]
    [TestCase(7, 4, new[] { 1, 2, 2, 2 })]
    [TestCase(3, 3, new[] { 1, 1, 1 })]
    [TestCase(8, 1, new[] { 8 })]
    public void ShardsAreContiguousDisjointAndCoverTheBatch(int batchSize, int ranks, int[] counts)
    {
        int next = 0;
        for (int r = 0; r < ranks; r++)
        {
            var shard = new BatchShard(r, ranks);
            Assert.That(shard.Start(batchSize), Is.EqualTo(next), $"rank {r} starts where rank {r - 1} ended");
            Assert.That(shard.Count(batchSize), Is.EqualTo(counts[r]));
            next += shard.Count(batchSize);
        }
        Assert.That(next, Is.EqualTo(batchSize));
        Assert.That(BatchShard.Describe(batchSize, ranks), Is.EqualTo(string.Join("+", counts)));
    }

    private static LaunchedRank? Detect(params (string Name, string Value)[] variables)
    {
        var environment = variables.ToDictionary(v => v.Name, v => v.Value);
        return LaunchedRank.Detect(name => environment.GetValueOrDefault(name));
    }

    [Test]
    public void TheLaunchersEnvironmentNamesRankAndSize()
    {
        Assert.That(Detect(), Is.Null, "no launcher: one process, libmpi never loaded");
        Assert.That(Detect(("OMPI_COMM_WORLD_RANK", "1"), ("OMPI_COMM_WORLD_SIZE", "3")), Is.EqualTo(new LaunchedRank(1, 3, "Open MPI (mpirun)")));
        Assert.That(Detect(("PMI_RANK", "0"), ("PMI_SIZE", "2")), Is.EqualTo(new LaunchedRank(0, 2, "PMI (mpiexec)")));
        Assert.That(Detect(("SLURM_STEP_ID", "0"), ("SLURM_PROCID", "5"), ("SLURM_STEP_NUM_TASKS", "8"), ("SLURM_NTASKS", "16")),
            Is.EqualTo(new LaunchedRank(5, 8, "Slurm (srun)")), "the step's own task count");
        Assert.That(Detect(("SLURM_PROCID", "0"), ("SLURM_NTASKS", "4")), Is.Null, "an sbatch script outside srun is one process");
        Assert.That(Detect(("OMPI_COMM_WORLD_RANK", "0"), ("OMPI_COMM_WORLD_SIZE", "2"), ("SLURM_STEP_ID", "0"), ("SLURM_PROCID", "3"), ("SLURM_STEP_NUM_TASKS", "4")),
            Is.EqualTo(new LaunchedRank(0, 2, "Open MPI (mpirun)")), "mpirun inside an allocation: mpirun's ranks");
    }

    [Test]
    public void AnInconsistentEnvironmentIsRefusedByName()
    {
        var e = Assert.Throws<InvalidOperationException>(() => Detect(("OMPI_COMM_WORLD_RANK", "2"), ("OMPI_COMM_WORLD_SIZE", "2")));
        Assert.That(e!.Message, Does.Contain("OMPI_COMM_WORLD_RANK=2").And.Contain("OMPI_COMM_WORLD_SIZE=2"));
        Assert.Throws<InvalidOperationException>(() => Detect(("PMI_RANK", "0")));
    }

    [Test]
    public void ASingleProcessJoinsWithoutMpi()
    {
        var group = ProcessGroups.Join(launched: null);
        Assert.That((group.Rank, group.Size), Is.EqualTo((0, 1)));
        Assert.That(ProcessGroups.Join(new LaunchedRank(0, 1, "Open MPI (mpirun)")), Is.SameAs(SingleProcess.Instance), "mpirun -np 1 needs no MPI either");
        Assert.That(SoftPrompt.Cuda.Interop.NativeLibraryResolver.LoadedFrom(OpenMpi.ImportName), Is.Null, "libmpi is never loaded by a single process");
    }

    [TestCase(2, 5)]
    [TestCase(3, 5)]
    public void ShardedSamplersTogetherDrawTheWholeBatchAndStayAtTheGlobalPosition(int ranks, int batchSize)
    {
        var examples = DemoModel.Rows("copy.train.jsonl", 12);
        var whole = new BatchSampler(examples, batchSize, promptLength: 2, seed: 3, shuffle: true);
        var shards = Enumerable.Range(0, ranks).Select(r => new BatchSampler(examples, batchSize, 2, 3, true) { Shard = new BatchShard(r, ranks) }).ToList();
        for (int step = 0; step < 5; step++)   // 25 rows of 12: crosses two epoch ends
        {
            var expected = Rows(whole.Next());
            var actual = shards.SelectMany(s => Rows(s.Next())).ToList();
            Assert.That(actual, Is.EqualTo(expected), $"batch {step}: the shards in rank order are the global batch");
            Assert.That(shards.Select(s => s.Position), Is.All.EqualTo(whole.Position));
        }
    }

    private static List<string> Rows(SoftPrompt.Engines.TokenBatch batch) =>
        Enumerable.Range(0, batch.Rows).Select(r => string.Join(",", batch.RowTokens(r).ToArray())).ToList();

    // 13 rows in evaluation batches of 4 (the last holds 1): whole batches per rank, contiguous, covering every row once.
    [TestCase(2, new[] { 0, 8 }, new[] { 8, 5 })]
    [TestCase(3, new[] { 0, 4, 8 }, new[] { 4, 4, 5 })]
    [TestCase(5, new[] { 0, 0, 4, 8, 12 }, new[] { 0, 4, 4, 4, 1 })]
    public void EvaluationSharesAreWholeBatchesInRowOrder(int ranks, int[] starts, int[] counts)
    {
        var shares = Enumerable.Range(0, ranks).Select(r => RowShares.Of(r, ranks, rows: 13, unit: 4)).ToList();
        Assert.That(shares.Select(s => s.Start), Is.EqualTo(starts));
        Assert.That(shares.Select(s => s.Count), Is.EqualTo(counts));
    }

    [Test]
    public void ABatchSmallerThanTheGroupIsRefused()
    {
        using var model = DemoModel.Open();
        model.Engine.LoadPrompts(new float[2 * model.Engine.EmbeddingSize], 1, 2);
        var options = new TrainOptions(Steps: 1, BatchSize: 2, LearningRate: 0.1f, new SoftPrompt.Engines.OptimizerSettings(SoftPrompt.Engines.OptimizerKind.Sgd), Seed: 0, Shuffle: false);
        var e = Assert.Throws<ArgumentException>(() => new TrainingRun(model.Engine, DemoModel.Rows("copy.train.jsonl", 8), options, new ThreeRanks()));
        Assert.That(e!.Message, Does.Contain("`TrainOptions.BatchSize` 2 is smaller than the 3 processes"));
    }

    /// <summary>A group the constructor only looks at (no collective is called before Run).</summary>
    private sealed class ThreeRanks : IProcessGroup
    {
        public int Rank => 0;
        public int Size => 3;
        public string Launcher => "test";
        public void AllGather(ReadOnlySpan<double> mine, Span<double> all) => throw new NotSupportedException();
        public void AllGather(ReadOnlySpan<byte> mine, Span<byte> all) => throw new NotSupportedException();
        public void Broadcast(Span<double> values, int root = 0) => throw new NotSupportedException();
        public void Broadcast(Span<float> values, int root = 0) => throw new NotSupportedException();
        public void Broadcast(Span<byte> values, int root = 0) => throw new NotSupportedException();
        public void Barrier() => throw new NotSupportedException();
        public void Abort(int exitCode) => throw new NotSupportedException();
        public void Dispose() { }
    }
}

using SoftPrompt.Checkpoints;

namespace SoftPrompt.Tests.Checkpoints;

public sealed class SafeTensorAtomicWriteTests : CheckpointTestDirectory
{
    /// <summary>Passes writes through until <c>limit</c> bytes, then fails like a full disk or a crash.</summary>
    private sealed class FailingStream(Stream inner, long limit, Func<Exception> failure) : Stream
    {
        private long _written;
        public override bool CanRead => false;
        public override bool CanSeek => false;
        public override bool CanWrite => true;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
        public override void Flush() => inner.Flush();
        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

        public override void Write(ReadOnlySpan<byte> buffer)
        {
            long room = limit - _written;
            if (buffer.Length > room)
            {
                inner.Write(buffer[..(int)room]);
                throw failure();
            }
            inner.Write(buffer);
            _written += buffer.Length;
        }
    }

    private static SafeTensorWriter Writer(float value, int count = 1000)
    {
        var writer = new SafeTensorWriter();
        writer.Add("w", Enumerable.Repeat(value, count).ToArray(), [count]);
        return writer;
    }

    [Test]
    public void SaveLeavesOnlyTheTarget()
    {
        string path = PathOf("model.safetensors");
        Writer(1f).Save(path);
        Assert.That(Directory.GetFiles(Dir), Is.EqualTo(new[] { path }));
    }

    [Test]
    public void SaveReplacesAnExistingFile()
    {
        string path = PathOf("model.safetensors");
        Writer(1f).Save(path);
        Writer(2f, 3).Save(path);
        using var file = SafeTensorFile.Open(path);
        Assert.That(file.Read<float>("w"), Is.EqualTo(new[] { 2f, 2f, 2f }));
        Assert.That(TempFiles(), Is.Empty);
    }

    [Test]
    public void IoFailureMidWriteKeepsTheOldFileAndRemovesTheTemp()
    {
        string path = PathOf("model.safetensors");
        Writer(1f).Save(path);
        var before = File.ReadAllBytes(path);
        var error = Assert.Throws<CheckpointException>(() =>
            Writer(2f).Save(path, s => new FailingStream(s, 500, () => new IOException("No space left on device"))))!;
        Assert.That(error.Message, Does.Contain("model.safetensors").And.Contain("No space left on device"));
        Assert.That(error.InnerException, Is.TypeOf<IOException>());
        Assert.That(File.ReadAllBytes(path), Is.EqualTo(before));
        Assert.That(TempFiles(), Is.Empty);
    }

    [Test]
    public void AnyFailureMidWriteKeepsTheOldFileAndRemovesTheTemp()
    {
        string path = PathOf("model.safetensors");
        Writer(1f).Save(path);
        var before = File.ReadAllBytes(path);
        Assert.Throws<InvalidOperationException>(() =>
            Writer(2f).Save(path, s => new FailingStream(s, 100, () => new InvalidOperationException("boom"))));
        Assert.That(File.ReadAllBytes(path), Is.EqualTo(before));
        Assert.That(TempFiles(), Is.Empty);
    }

    [Test]
    public void FailureWithoutAnOldFileLeavesNothing()
    {
        string path = PathOf("new.safetensors");
        Assert.Throws<CheckpointException>(() =>
            Writer(2f).Save(path, s => new FailingStream(s, 10, () => new IOException("disk gone"))));
        Assert.That(Directory.GetFiles(Dir), Is.Empty);
    }

    [Test]
    public void MissingDirectoryIsACheckpointError()
    {
        string path = Path.Combine(Dir, "absent", "model.safetensors");
        var error = Assert.Throws<CheckpointException>(() => Writer(1f).Save(path))!;
        Assert.That(error.Message, Does.Contain(path).And.Contain("directory exists"));
    }
}

using SoftPrompt.Cuda.Interop;

namespace SoftPrompt.Tests.Cuda;

public sealed class NativeLibraryResolverTests
{
    [Test]
    public void MissingLibraryIsAResultWithTheReasonPerCandidate()
    {
        string name = "softprompt-test-missing-" + Guid.NewGuid().ToString("N");
        NativeLibraryResolver.Register(name, () => ["/nonexistent/dir/libnothing.so.1", "libsoftprompt-does-not-exist.so.7"]);
        Assert.That(NativeLibraryResolver.TryLoad(name, out var handle), Is.False);
        Assert.That(handle, Is.EqualTo((nint)0));
        Assert.That(NativeLibraryResolver.LoadedFrom(name), Is.Null);
        // Rooted paths that do not exist are skipped without asking the loader; bare names carry the loader's reason.
        var attempts = NativeLibraryResolver.Attempts(name);
        Assert.That(attempts.Select(a => a.Candidate), Is.EqualTo(new[] { "libsoftprompt-does-not-exist.so.7" }));
        Assert.That(attempts[0].Failure, Does.Contain("libsoftprompt-does-not-exist.so.7").And.Contain("No such file"));
        Assert.That(NativeLibraryResolver.DescribeAttempts(name), Does.StartWith("tried libsoftprompt-does-not-exist.so.7 ("));
    }

    [Test]
    public void FirstCandidateThatLoadsWinsAndIsRemembered()
    {
        string name = "softprompt-test-libc-" + Guid.NewGuid().ToString("N");
        int enumerations = 0;
        NativeLibraryResolver.Register(name, () => { enumerations++; return ["libsoftprompt-does-not-exist.so.1", "libc.so.6", "libm.so.6"]; });
        Assert.That(NativeLibraryResolver.TryLoad(name, out var first), Is.True);
        Assert.That(NativeLibraryResolver.TryLoad(name, out var second), Is.True);
        Assert.That(second, Is.EqualTo(first));
        Assert.That(enumerations, Is.EqualTo(1));
        Assert.That(NativeLibraryResolver.LoadedFrom(name), Is.EqualTo("libc.so.6"));
        Assert.That(NativeLibraryResolver.Attempts(name).Select(a => a.Failure is null), Is.EqualTo(new[] { false, true }));
    }

    [Test]
    public void CudaNamesAreRegisteredAndCublasIsSearchedNewestFirst()
    {
        CudaLibraries.EnsureRegistered();
        Assert.That(NativeLibraryResolver.IsRegistered(CudaLibraries.DriverImportName), Is.True);
        Assert.That(NativeLibraryResolver.IsRegistered(CudaLibraries.CublasImportName), Is.True);
        Assert.That(CudaLibraries.CublasMajors, Is.EqualTo(new[] { 13, 12, 11 }));
        Assert.That(CudaLibraries.SearchDirectories(), Is.All.Matches<string>(Directory.Exists));
    }
}

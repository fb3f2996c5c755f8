using System.Collections.Concurrent;
using System.Reflection;
using System.Runtime.InteropServices;

namespace SoftPrompt.Cuda.Interop;

/// <summary>One attempt to load a native library: the file or name tried and why it failed (null when it loaded).</summary>
public readonly record struct NativeLibraryAttempt(string Candidate, string? Failure);

/// <summary>
/// The one DllImport resolver of the SoftPrompt assembly. .NET allows a single resolver per assembly, so every
/// part that needs a native library under a logical import name (cuBLAS, the kernel emulator, …) registers its
/// candidate files here instead of calling <see cref="NativeLibrary.SetDllImportResolver"/> itself.
/// Names that are not registered fall through to the runtime's default probing.
/// </summary>
public static class NativeLibraryResolver
{
    private static readonly ConcurrentDictionary<string, Entry> Entries = new(StringComparer.Ordinal);

    static NativeLibraryResolver() =>
        NativeLibrary.SetDllImportResolver(typeof(NativeLibraryResolver).Assembly, Resolve);

    /// <summary>
    /// Registers <paramref name="importName"/> (the string in [LibraryImport]). <paramref name="candidates"/> is
    /// enumerated at load time, in order: rooted paths are loaded only if the file exists; bare file names go to the
    /// system loader's search (LD_LIBRARY_PATH, ld.so.cache). <paramref name="beforeLoad"/>, if given, runs with each
    /// rooted candidate just before it is loaded (e.g. to preload a sibling dependency the loader would not find).
    /// Re-registering a name that has not loaded yet replaces its candidates.
    /// </summary>
    public static void Register(string importName, Func<IEnumerable<string>> candidates, Action<string>? beforeLoad = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(importName);
        ArgumentNullException.ThrowIfNull(candidates);
        Entries.AddOrUpdate(importName, _ => new Entry(candidates, beforeLoad), (_, old) =>
            old.Handle != 0 ? old : new Entry(candidates, beforeLoad));
    }

    public static bool IsRegistered(string importName) => Entries.ContainsKey(importName);

    /// <summary>Loads a registered name now (once; later calls return the same handle). Never throws for a missing library.</summary>
    public static bool TryLoad(string importName, out nint handle)
    {
        handle = Entries.TryGetValue(importName, out var entry) ? entry.Load() : 0;
        return handle != 0;
    }

    /// <summary>The file that loaded for <paramref name="importName"/> (the path, or the bare name the system loader found); null if none has.</summary>
    public static string? LoadedFrom(string importName) =>
        Entries.TryGetValue(importName, out var entry) ? entry.LoadedFrom : null;

    /// <summary>Every candidate tried by the last load of <paramref name="importName"/>, with the loader's reason for each failure.</summary>
    public static IReadOnlyList<NativeLibraryAttempt> Attempts(string importName) =>
        Entries.TryGetValue(importName, out var entry) ? entry.Attempts : [];

    /// <summary>"tried: a (reason); b (reason)" — for error messages.</summary>
    public static string DescribeAttempts(string importName)
    {
        var attempts = Attempts(importName);
        if (attempts.Count == 0) return "no candidate file was found";
        return "tried " + string.Join("; ", attempts.Select(a => a.Failure is null ? a.Candidate : $"{a.Candidate} ({a.Failure})"));
    }

    private static nint Resolve(string libraryName, Assembly assembly, DllImportSearchPath? searchPath) =>
        Entries.TryGetValue(libraryName, out var entry) ? entry.Load() : 0;

    private sealed class Entry(Func<IEnumerable<string>> candidates, Action<string>? beforeLoad)
    {
        private readonly Lock gate = new();
        public nint Handle;
        public string? LoadedFrom;
        public IReadOnlyList<NativeLibraryAttempt> Attempts = [];

        public nint Load()
        {
            if (Volatile.Read(ref Handle) != 0) return Handle;
            lock (gate)
            {
                if (Handle != 0) return Handle;
                var attempts = new List<NativeLibraryAttempt>();
                foreach (var candidate in candidates())
                {
                    bool rooted = Path.IsPathRooted(candidate);
                    if (rooted && !File.Exists(candidate)) continue;
                    try
                    {
                        if (rooted) beforeLoad?.Invoke(candidate);
                        nint handle = NativeLibrary.Load(candidate);
                        attempts.Add(new(candidate, null));
                        Attempts = attempts;
                        LoadedFrom = candidate;
                        Volatile.Write(ref Handle, handle);
                        return handle;
                    }
                    catch (DllNotFoundException e)
                    {
                        attempts.Add(new(candidate, LoaderReason(e.Message)));
                    }
                    catch (BadImageFormatException e)
                    {
                        attempts.Add(new(candidate, LoaderReason(e.Message)));
                    }
                }
                Attempts = attempts;
                return 0;
            }
        }

        // .NET's message opens with generic advice; the loader's own words (dlerror) are on the last line.
        private static string LoaderReason(string message)
        {
            string trimmed = message.TrimEnd();
            return trimmed[(trimmed.LastIndexOf('\n') + 1)..].Trim();
        }
    }
}

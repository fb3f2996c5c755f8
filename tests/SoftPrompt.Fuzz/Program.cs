using SoftPrompt.Fuzz;

// SoftPrompt.Fuzz TARGET            run under afl-fuzz (SharpFuzz out-of-process mode; without afl: one input from stdin)
// SoftPrompt.Fuzz TARGET --replay PATH...   run files (or every file under directories), report crashes, exit 1 on any
// SoftPrompt.Fuzz selftest           under afl-fuzz: the config-gpt2 target, plus a planted crash on inputs starting
//                                   with '!', to check that afl-fuzz records an escaping exception as a crash
if (args is ["selftest"])
{
    string selftestDir = Path.Combine(Path.GetTempPath(), $"softprompt-fuzz-selftest-{Environment.ProcessId}");
    SharpFuzz.Fuzzer.OutOfProcess.Run(stream =>
    {
        using var buffer = new MemoryStream();
        stream.CopyTo(buffer);
        var data = buffer.GetBuffer().AsSpan(0, (int)buffer.Length);
        FuzzTargets.RunExpectingCleanErrors("config-gpt2", data, selftestDir);
        if (data.Length > 0 && data[0] == '!') throw new NullReferenceException("selftest crash");
    });
    return 0;
}
if (args.Length == 0 || !FuzzTargets.Names.Contains(args[0]))
{
    Console.Error.WriteLine($"usage: SoftPrompt.Fuzz TARGET [--replay PATH...]; targets: {string.Join(", ", FuzzTargets.Names)}");
    return 2;
}
string target = args[0];
string workDir = Path.Combine(Environment.GetEnvironmentVariable("FUZZ_WORKDIR") ?? Path.GetTempPath(), $"softprompt-fuzz-{target}-{Environment.ProcessId}");
try
{
    if (args.Length > 1 && args[1] == "--replay")
    {
        int crashes = 0, runs = 0;
        var files = args.Skip(2).SelectMany(p => Directory.Exists(p) ? Directory.EnumerateFiles(p, "*", SearchOption.AllDirectories) : [p]);
        foreach (string file in files.Order(StringComparer.Ordinal))
        {
            runs++;
            try
            {
                FuzzTargets.Run(target, File.ReadAllBytes(file), workDir);
                Console.WriteLine($"ok      {file}");
            }
            catch (Exception e) when (FuzzTargets.IsCleanError(e, workDir))
            {
                Console.WriteLine($"clean   {file}: {e.GetType().Name}: {e.Message}");
            }
            catch (Exception e)
            {
                crashes++;
                Console.WriteLine($"CRASH   {file}: {e}");
            }
        }
        Console.WriteLine($"{target}: {runs} inputs, {crashes} crashes");
        return crashes == 0 ? 0 : 1;
    }
    SharpFuzz.Fuzzer.OutOfProcess.Run(stream =>
    {
        using var buffer = new MemoryStream();
        stream.CopyTo(buffer);
        FuzzTargets.RunExpectingCleanErrors(target, buffer.GetBuffer().AsSpan(0, (int)buffer.Length), workDir);
    });
    return 0;
}
finally
{
    if (Directory.Exists(workDir)) Directory.Delete(workDir, recursive: true);
}

using System.Text.RegularExpressions;
using SoftPrompt.Cli;

namespace SoftPrompt.Tests.Cli;

/// <summary>Library messages name settings in library terms; the command line shows its flags instead.</summary>
public sealed class CliFlagsTests
{
    [Test]
    public void LibrarySettingNamesBecomeFlags()
    {
        Assert.That(CliFlags.Translate("`TrainOptions.LearningRate` must be a non-negative number, got -1."), Is.EqualTo("--lr must be a non-negative number, got -1."));
        Assert.That(CliFlags.Translate("`device` cuda: no GPU; or use `device` cpu or cuda-emulated"), Is.EqualTo("--device cuda: no GPU; or use --device cpu or cuda-emulated"));
        Assert.That(CliFlags.Translate("`SomethingElse` stays"), Is.EqualTo("`SomethingElse` stays"), "names the table does not know are left as written");
    }

    /// <summary>
    /// Every setting the library's messages name (a backticked name inside a string literal of src/SoftPrompt) has a flag,
    /// and no message of the library speaks in flags itself.
    /// </summary>
    [Test]
    public void EveryNameTheLibraryUsesHasAFlagAndNoLibraryMessageUsesFlags()
    {
        string root = TestContext.CurrentContext.TestDirectory;
        while (!File.Exists(Path.Combine(root, "Engine.sln"))) root = Path.GetDirectoryName(root) ?? throw new AssertionException("no Engine.sln above the test directory");
        var names = new SortedSet<string>();
        var flagged = new List<string>();
        foreach (string file in Directory.EnumerateFiles(Path.Combine(root, "src", "SoftPrompt"), "*.cs", SearchOption.AllDirectories))
        {
            if (file.Contains($"{Path.DirectorySeparatorChar}obj{Path.DirectorySeparatorChar}")) continue;
            foreach (var (line, number) in File.ReadLines(file).Select((l, i) => (l, i + 1)))
            {
                if (line.TrimStart().StartsWith("//", StringComparison.Ordinal)) continue;
                foreach (Match literal in Regex.Matches(line, "\"(?:[^\"\\\\]|\\\\.)*\""))
                {
                    foreach (Match name in Regex.Matches(literal.Value, "`([A-Za-z][A-Za-z0-9.]*)`")) names.Add(name.Groups[1].Value);
                    if (Regex.IsMatch(literal.Value, @"(^|[\s(""])--[a-z][a-z-]+") && !literal.Value.Contains("huggingface-cli", StringComparison.Ordinal))
                        flagged.Add($"{Path.GetFileName(file)}:{number}: {literal.Value}");
                }
            }
        }
        Assert.That(flagged, Is.Empty, "library messages name settings in backticks, not as CLI flags");
        Assert.That(names.Where(n => !CliFlags.Names.Contains(n) && n != "softprompt"), Is.Empty, "every setting a library message names needs its flag in CliFlags");
        Assert.That(names, Has.Count.GreaterThan(20));
    }
}

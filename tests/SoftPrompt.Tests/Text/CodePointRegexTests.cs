using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using SoftPrompt.Text;

namespace SoftPrompt.Tests.Text;

public sealed class CodePointRegexTests
{
    private static string Root => Path.Combine(TestContext.CurrentContext.TestDirectory, "fixtures", "tokenizers");

    private static IEnumerable<int> AllCodePoints() =>
        Enumerable.Range(0, 0x110000).Where(cp => cp is < 0xD800 or > 0xDFFF);

    private static Regex Whole(string set) => CodePointRegex.Create(@"\A(?:" + set + @")\z");

    /// <summary>Every character set the pre-tokenizer patterns use, over all 1,112,064 code points, against Oniguruma's (Hugging Face's regex engine) answer.</summary>
    [Test]
    public void CharacterSetsMatchTheSameCodePointsAsHuggingFace()
    {
        var fixture = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(Root, "oniguruma-sets.json"))).RootElement;
        var failures = new List<string>();
        Span<char> buffer = stackalloc char[2];
        foreach (var set in fixture.GetProperty("sets").EnumerateObject())
        {
            var members = new HashSet<int>();
            foreach (var range in set.Value.EnumerateArray())
                for (int cp = range[0].GetInt32(); cp <= range[1].GetInt32(); cp++) members.Add(cp);
            var regex = Whole(set.Name);
            var wrong = new List<int>();
            foreach (int cp in AllCodePoints())
            {
                int length = new Rune(cp).EncodeToUtf16(buffer);
                if (regex.IsMatch(buffer[..length]) != members.Contains(cp)) wrong.Add(cp);
            }
            if (wrong.Count > 0) failures.Add($"{set.Name}: {wrong.Count} code points differ, first U+{wrong[0]:X4}");
        }
        Assert.That(failures, Is.Empty);
    }

    [TestCase(@"\w")]
    [TestCase(@"\W")]
    [TestCase(@"\d")]
    [TestCase(@"[\w-]")]
    [TestCase(@"[^\p{Lu}a-z\d]")]
    [TestCase(@"\p{IsGreek}")]
    [TestCase(@"[\p{Sm}\p{Sc}]")]
    [TestCase(@"\P{L}")]
    public void SetsKeepDotNetMeaningInsideTheBmp(string set)
    {
        var translated = Whole(set);
        var original = new Regex(@"\A(?:" + set + @")\z", RegexOptions.CultureInvariant);
        var differ = Enumerable.Range(0, 0x10000).Where(cp => cp is < 0xD800 or > 0xDFFF)
            .Where(cp => translated.IsMatch(((char)cp).ToString()) != original.IsMatch(((char)cp).ToString())).Take(5).ToList();
        Assert.That(differ, Is.Empty);
    }

    [TestCase(@"\d", UnicodeCategory.DecimalDigitNumber)]
    [TestCase(@"\p{Nd}", UnicodeCategory.DecimalDigitNumber)]
    [TestCase(@"\p{Lo}", UnicodeCategory.OtherLetter)]
    [TestCase(@"\p{So}", UnicodeCategory.OtherSymbol)]
    public void AstralCodePointsFollowTheirUnicodeCategory(string set, UnicodeCategory category)
    {
        var regex = Whole(set);
        var differ = Enumerable.Range(0x10000, 0x100000)
            .Where(cp => regex.IsMatch(char.ConvertFromUtf32(cp)) != (Rune.GetUnicodeCategory(new Rune(cp)) == category)).Take(5).ToList();
        Assert.That(differ, Is.Empty);
    }

    [TestCase(@"\p{L}+", "𝑥𝑦z", true)]
    [TestCase(@"𝑥+", "𝑥𝑥", true)]
    [TestCase(@"[😀-🙏]+", "🙂😀", true)]
    [TestCase(@"[😀-🙏]", "🙂😀", false)]
    [TestCase(@".", "𝑥", true)]
    [TestCase(@"[^a]", "𝑥", true)]
    [TestCase(@"\S", "🙂", true)]
    [TestCase(@"(?i:'s)", "'ſ", true)]
    [TestCase(@"(?i:'s)", "'S", true)]
    [TestCase(@"(?i)'s", "'ſ", true)]
    [TestCase(@"(?i:x)'s", "'ſ", false)]
    [TestCase(@"'s", "'ſ", false)]
    [TestCase(@"(?<s>a)\k<s>", "aa", true)]
    [TestCase(@"(?i:(?-i:s))", "ſ", false)]
    public void MatchesWholeText(string pattern, string text, bool expected) =>
        Assert.That(Whole(pattern).IsMatch(text), Is.EqualTo(expected));

    [TestCase(@"[a[b]]", "nested")]
    [TestCase(@"[a-z&&[^aeiou]]", "intersection")]
    [TestCase(@"[a-z-[aeiou]]", "subtraction")]
    [TestCase(@"[z-a]", "reverse")]
    [TestCase(@"[abc", "unterminated")]
    public void UnsupportedClassSyntaxIsRefused(string pattern, string why)
    {
        var e = Assert.Throws<ArgumentException>(() => CodePointRegex.Create(pattern));
        Assert.That(e!.Message, Does.Contain(why));
    }
}

using SoftPrompt.Text;

namespace SoftPrompt.Tests.Text;

public sealed class VerbalizerTests
{
    [Test]
    public void ParsesValuesAndTextsInOrder()
    {
        var labels = Verbalizer.Parse("0=negative, 1 = positive ,2=very\\, very\\=good");
        Assert.That(labels.Values, Is.EqualTo(new[] { "0", "1", "2" }));
        Assert.That(labels.Texts, Is.EqualTo(new[] { "negative", "positive", "very, very=good" }));
        Assert.That(labels.IndexOf("1"), Is.EqualTo(1));
        Assert.That(labels.IndexOf(" 2 "), Is.EqualTo(2));
        Assert.That(labels.IndexOf("3"), Is.Null);
    }

    [TestCase("0=negative", "at least two")]
    [TestCase("0=negative,1", "must be value=text")]
    [TestCase("0=negative,=positive", "needs both")]
    [TestCase("0=negative,0=positive", "listed twice")]
    [TestCase("0=good,1=good", "used twice")]
    [TestCase("0=a=b,1=c", "must be value=text")]
    public void MalformedSpecsSayWhatIsWrong(string spec, string problem)
    {
        var e = Assert.Throws<DataException>(() => Verbalizer.Parse(spec));
        Assert.That(e!.Message, Does.Contain(problem));
    }
}

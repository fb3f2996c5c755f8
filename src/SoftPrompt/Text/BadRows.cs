namespace SoftPrompt.Text;

/// <summary>What to do with a malformed row: throw (the default) or, with skipping on, count it and keep the first few reasons.</summary>
internal sealed class BadRows(bool skip)
{
    private const int KeptReasons = 5;

    public int Count { get; private set; }
    public List<string> Reasons { get; } = [];

    public void Report(string message, Exception? inner = null)
    {
        if (!skip) throw inner is null ? new DataException(message) : new DataException(message, inner);
        Count++;
        if (Reasons.Count < KeptReasons) Reasons.Add(message);
    }

    public void Add(int count, IEnumerable<string> reasons)
    {
        Count += count;
        foreach (string reason in reasons)
            if (Reasons.Count < KeptReasons) Reasons.Add(reason);
    }
}

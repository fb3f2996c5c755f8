using SoftPrompt.Checkpoints;

namespace SoftPrompt.Text;

/// <summary>A data file or row that cannot be used; the message names the file and 1-based row and what to fix, on one line.</summary>
public sealed class DataException : Exception
{
    public DataException(string message) : base(OneLineMessage.Escape(message)) { }
    public DataException(string message, Exception inner) : base(OneLineMessage.Escape(message), inner) { }
}

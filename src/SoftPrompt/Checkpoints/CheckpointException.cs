namespace SoftPrompt.Checkpoints;

/// <summary>A checkpoint, config or prompt file that cannot be used; the message names the file and tensor and the fix, on one line.</summary>
public sealed class CheckpointException : Exception
{
    public CheckpointException(string message) : base(OneLineMessage.Escape(message)) { }
    public CheckpointException(string message, Exception inner) : base(OneLineMessage.Escape(message), inner) { }
}

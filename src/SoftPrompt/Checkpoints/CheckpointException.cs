namespace SoftPrompt.Checkpoints;

/// <summary>A checkpoint, config or prompt file that cannot be used; the message names the file and tensor and the fix.</summary>
public sealed class CheckpointException : Exception
{
    public CheckpointException(string message) : base(message) { }
    public CheckpointException(string message, Exception inner) : base(message, inner) { }
}

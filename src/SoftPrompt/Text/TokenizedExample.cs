namespace SoftPrompt.Text;

/// <summary>One training or evaluation row: the model reads the prompt, then Input, then Target; the loss covers Target.</summary>
public sealed record TokenizedExample(int[] Input, int[] Target)
{
    public int Length => Input.Length + Target.Length;
}

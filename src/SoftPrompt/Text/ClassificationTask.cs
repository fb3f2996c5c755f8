namespace SoftPrompt.Text;

/// <summary>
/// What rank classification needs: each label's target token ids (exactly the targets the examples train on, prefix
/// and EOS included) and each example's gold label index, aligned with the dataset's examples.
/// </summary>
public sealed record ClassificationTask(IReadOnlyList<string> LabelTexts, IReadOnlyList<int[]> LabelTokens, int[] GoldLabels);

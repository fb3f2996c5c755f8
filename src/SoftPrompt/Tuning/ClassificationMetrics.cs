namespace SoftPrompt.Tuning;

/// <summary>One class's scores: precision and recall of the predictions of this class, and how many rows have it as gold.</summary>
public sealed record ClassMetrics(string Label, double Precision, double Recall, double F1, int Support, int Predicted);

/// <summary>
/// Accuracy, per-class precision/recall/F1 and macro-F1 of predicted class indices against gold ones. Macro-F1 is the
/// unweighted mean of F1 over the classes that occur as gold or as prediction (scikit-learn's f1_score(average="macro")
/// without a labels argument); a class never predicted has precision 0, one never gold has recall 0.
/// <see cref="Confusion"/>[gold][predicted] counts rows.
/// </summary>
public sealed record ClassificationMetrics(double Accuracy, double MacroF1, IReadOnlyList<ClassMetrics> PerClass, int[][] Confusion)
{
    public static ClassificationMetrics From(ReadOnlySpan<int> gold, ReadOnlySpan<int> predicted, IReadOnlyList<string> labels)
    {
        if (gold.Length != predicted.Length) throw new ArgumentException($"{gold.Length} gold labels but {predicted.Length} predictions.");
        if (gold.Length == 0) throw new ArgumentException("No rows to score.");
        int classes = labels.Count;
        var confusion = new int[classes][];
        for (int c = 0; c < classes; c++) confusion[c] = new int[classes];
        int correct = 0;
        for (int i = 0; i < gold.Length; i++)
        {
            if ((uint)gold[i] >= (uint)classes || (uint)predicted[i] >= (uint)classes)
                throw new ArgumentException($"Row {i}: class index outside 0..{classes - 1}.");
            confusion[gold[i]][predicted[i]]++;
            if (gold[i] == predicted[i]) correct++;
        }
        var perClass = new ClassMetrics[classes];
        double f1Sum = 0;
        int present = 0;
        for (int c = 0; c < classes; c++)
        {
            int truePositive = confusion[c][c], support = 0, predictedCount = 0;
            for (int k = 0; k < classes; k++)
            {
                support += confusion[c][k];
                predictedCount += confusion[k][c];
            }
            double precision = predictedCount == 0 ? 0 : (double)truePositive / predictedCount;
            double recall = support == 0 ? 0 : (double)truePositive / support;
            double f1 = precision + recall == 0 ? 0 : 2 * precision * recall / (precision + recall);
            perClass[c] = new ClassMetrics(labels[c], precision, recall, f1, support, predictedCount);
            if (support > 0 || predictedCount > 0)
            {
                f1Sum += f1;
                present++;
            }
        }
        return new ClassificationMetrics((double)correct / gold.Length, f1Sum / present, perClass, confusion);
    }
}

using SoftPrompt.Checkpoints;
using SoftPrompt.Tuning;

namespace SoftPrompt.Cli.Output;

/// <summary>
/// A PNG of a run's curves from its metrics log: training loss per step (raw, and smoothed when there are many
/// steps) and dev loss on the left axis, the dev selection metric on the right. Drawn with ScottPlot (SkiaSharp,
/// whose Linux native library has no system dependencies, so it renders headless).
/// </summary>
internal static class CurvePlot
{
    public static void Save(IReadOnlyList<MetricsRecord> records, string path, string? devMetric, string title)
    {
        var train = records.Where(r => r.Kind == "train" && double.IsFinite(r.Values.GetValueOrDefault("loss", double.NaN))).ToList();
        if (train.Count == 0) throw new InvalidOperationException("the metrics log has no training steps to plot");
        var plot = new ScottPlot.Plot();
        double[] steps = [.. train.Select(r => (double)r.Step)];
        double[] loss = [.. train.Select(r => r.Values["loss"])];
        var evals = records.Where(r => r.Kind == "eval").ToList();
        double[] devLoss = evals.Count > 0 && evals.All(r => r.Values.ContainsKey("dev_loss")) ? [.. evals.Select(r => r.Values["dev_loss"])] : [];
        // Losses fall over orders of magnitude: a log axis shows the late progress a linear one flattens to zero.
        var all = loss.Concat(devLoss).Where(v => v > 0).ToList();
        bool logScale = all.Count > 0 && all.Min() > 0 && all.Max() / all.Min() > 20 && loss.All(v => v > 0) && devLoss.All(v => v > 0);
        double[] Y(double[] values) => logScale ? [.. values.Select(Math.Log10)] : values;

        var raw = plot.Add.Scatter(steps, Y(loss));
        raw.LegendText = "train loss";
        raw.MarkerSize = train.Count > 50 ? 0 : 4;
        raw.LineWidth = 1;
        if (train.Count > 50)
        {
            var color = raw.Color;
            raw.Color = color.WithAlpha(0.3);
            var smooth = plot.Add.Scatter(steps, Y(Smooth(loss, Math.Max(2, train.Count / 50))));
            smooth.LegendText = "train loss (moving average)";
            smooth.Color = color;
            smooth.MarkerSize = 0;
            smooth.LineWidth = 2;
        }
        if (logScale)
        {
            plot.Axes.Left.TickGenerator = new ScottPlot.TickGenerators.NumericAutomatic
            {
                MinorTickGenerator = new ScottPlot.TickGenerators.LogMinorTickGenerator(),
                IntegerTicksOnly = true,
                LabelFormatter = y => Math.Pow(10, y).ToString("g3", System.Globalization.CultureInfo.InvariantCulture),
            };
        }

        if (evals.Count > 0)
        {
            double[] evalSteps = [.. evals.Select(r => (double)r.Step)];
            if (devLoss.Length > 0)
            {
                var dev = plot.Add.Scatter(evalSteps, Y(devLoss));
                dev.LegendText = "dev loss";
                dev.MarkerSize = 7;
            }
            string key = "dev_" + devMetric;
            if (devMetric is not null && evals.All(r => r.Values.ContainsKey(key)))
            {
                var metric = plot.Add.Scatter(evalSteps, [.. evals.Select(r => r.Values[key])]);
                metric.LegendText = $"dev {devMetric} (right axis)";
                metric.MarkerSize = 7;
                metric.Axes.YAxis = plot.Axes.Right;
                plot.Axes.Right.Label.Text = $"dev {devMetric}";
                // Every selection metric is a fraction; a fixed 0–1 axis keeps 0.995 → 1.0 from looking like a leap.
                plot.Axes.SetLimitsY(0, 1.05, plot.Axes.Right);
            }
        }
        plot.Title(title);
        plot.XLabel("step");
        plot.YLabel(logScale ? "loss (mean CE per target token, log scale)" : "loss (mean CE per target token)");
        plot.ShowLegend();
        byte[] png = plot.GetImageBytes(900, 540, ScottPlot.ImageFormat.Png);
        AtomicFile.Write(path, stream => stream.Write(png));
    }

    /// <summary>Trailing moving average over <paramref name="window"/> points.</summary>
    private static double[] Smooth(double[] values, int window)
    {
        var smooth = new double[values.Length];
        double sum = 0;
        for (int i = 0; i < values.Length; i++)
        {
            sum += values[i];
            if (i >= window) sum -= values[i - window];
            smooth[i] = sum / Math.Min(i + 1, window);
        }
        return smooth;
    }
}

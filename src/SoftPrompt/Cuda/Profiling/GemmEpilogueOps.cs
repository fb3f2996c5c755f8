namespace SoftPrompt.Cuda;

/// <summary>The profile labels of GEMMs with an epilogue, built once so that profiling one allocates nothing.</summary>
internal static class GemmEpilogueOps
{
    public enum Arithmetic { Fp32, Tf32, Bf16 }

    private static readonly string[] Labels = Build();

    /// <summary>"bf16→bf16 +gelu_aux_bias", "fp32 +bias", "bf16 +dgelu" (bf16 A/B into fp32 D).</summary>
    public static string Label(Arithmetic arithmetic, bool bf16Output, GemmEpilogueKind epilogue) =>
        Labels[((int)arithmetic * 2 + (bf16Output ? 1 : 0)) * EpilogueCount + (int)epilogue];

    private static readonly int EpilogueCount = Enum.GetValues<GemmEpilogueKind>().Length;

    private static string[] Build()
    {
        var labels = new List<string>();
        foreach (var arithmetic in Enum.GetValues<Arithmetic>())
            foreach (bool bf16Output in new[] { false, true })
                foreach (var epilogue in Enum.GetValues<GemmEpilogueKind>())
                    labels.Add($"{arithmetic.ToString().ToLowerInvariant()}{(bf16Output ? "→bf16" : "")} +{Name(epilogue)}");
        return [.. labels];
    }

    private static string Name(GemmEpilogueKind epilogue) => epilogue switch
    {
        GemmEpilogueKind.Bias => "bias",
        GemmEpilogueKind.GeluBias => "gelu_bias",
        GemmEpilogueKind.GeluAuxBias => "gelu_aux_bias",
        GemmEpilogueKind.DGelu => "dgelu",
        _ => "c",
    };
}

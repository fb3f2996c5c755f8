namespace SoftPrompt.Distributed;

/// <summary>Joins the group the launcher started this process in: MPI for a world of more than one, else <see cref="SingleProcess"/> (libmpi never loaded).</summary>
public static class ProcessGroups
{
    public static IProcessGroup Join() => Join(LaunchedRank.FromEnvironment());

    public static IProcessGroup Join(LaunchedRank? launched) =>
        launched is null || launched.Size == 1 ? SingleProcess.Instance : MpiProcessGroup.Join(launched);
}

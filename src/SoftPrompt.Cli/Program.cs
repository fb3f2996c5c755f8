using System.CommandLine;
using SoftPrompt.Cli;
using SoftPrompt.Cli.Commands;

// A root named for the command users type (RootCommand takes the assembly's name, SoftPrompt.Cli, for usage lines).
var root = new Command("softprompt", "softprompt — prompt tuning for frozen language models (Lester et al., 2021)") { new System.CommandLine.Help.HelpOption(), new VersionOption() };
root.Subcommands.Add(InfoCommand.Create());
root.Subcommands.Add(TrainCommand.Create());
root.Subcommands.Add(EvalCommand.Create());
root.Subcommands.Add(PredictCommand.Create());
root.Subcommands.Add(EnsembleCommand.Create());
root.Subcommands.Add(ExportCommand.Create());
root.Subcommands.Add(ImportCommand.Create());
root.Subcommands.Add(ConvertCommand.Create());
root.Subcommands.Add(DemoCommand.Create());
root.Subcommands.Add(DoctorCommand.Create());
root.Subcommands.Add(NeighborsCommand.Create());
root.Subcommands.Add(BenchCommand.Create());
CliErrors.UseJson(args);
return CliErrors.Run(() =>
{
    // Under mpirun or srun `train`, `eval`, `predict` and `ensemble` share their work between the processes (rank 0 alone
    // prints and writes); every other verb runs once, on rank 0, so N copies neither print N times nor race on the same files.
    if (args.FirstOrDefault() is not ("train" or "eval" or "predict" or "ensemble") && SoftPrompt.Distributed.LaunchedRank.FromEnvironment() is { Rank: > 0 }) return 0;
    var parsed = root.Parse(args);
    return parsed.Errors.Count > 0 ? CliErrors.Usage(parsed, args) : parsed.Invoke();
});

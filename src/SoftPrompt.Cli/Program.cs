using System.CommandLine;
using SoftPrompt.Cli;
using SoftPrompt.Cli.Commands;

var root = new RootCommand("softprompt — prompt tuning for frozen language models (Lester et al., 2021)");
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
return CliErrors.Run(() => root.Parse(args).Invoke());

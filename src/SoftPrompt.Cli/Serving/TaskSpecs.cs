using SoftPrompt.Text;

namespace SoftPrompt.Cli.Serving;

/// <summary>
/// The task flags of `predict`: --prompt TASK=FILE (one per task, in order: task i runs with prompt i) and --labels, either
/// shared by every task ("0=neg,1=pos") or for one task ("TASK=0=neg,1=pos"; the text before the first '=' names a task
/// given with --prompt).
/// </summary>
internal sealed record TaskSpecs(IReadOnlyList<string> Tasks, IReadOnlyList<string> PromptPaths, IReadOnlyDictionary<string, Verbalizer> Labels)
{
    public static TaskSpecs Parse(IReadOnlyList<string> prompts, IReadOnlyList<string> labels)
    {
        if (prompts.Count == 0) throw new ArgumentException("Give at least one --prompt TASK=FILE.");
        var tasks = new List<string>();
        var paths = new List<string>();
        foreach (string spec in prompts)
        {
            int split = spec.IndexOf('=');
            if (split <= 0 || split == spec.Length - 1)
                throw new ArgumentException($"--prompt \"{spec}\": write TASK=FILE, the task name the data's task column uses and its prompt file (e.g. --prompt sentiment=sst2.safetensors).");
            string task = spec[..split].Trim();
            if (tasks.Contains(task)) throw new ArgumentException($"--prompt: task \"{task}\" is given twice; give each task one prompt.");
            tasks.Add(task);
            paths.Add(spec[(split + 1)..]);
        }

        Verbalizer? shared = null;
        var perTask = new Dictionary<string, Verbalizer>(StringComparer.Ordinal);
        foreach (string spec in labels)
        {
            int split = spec.IndexOf('=');
            string head = split > 0 ? spec[..split].Trim() : "";
            if (tasks.Contains(head))
            {
                if (perTask.ContainsKey(head)) throw new ArgumentException($"--labels: task \"{head}\" has labels twice.");
                perTask[head] = Verbalizer.Parse(spec[(split + 1)..]);
            }
            else
            {
                if (shared is not null) throw new ArgumentException($"--labels \"{spec}\": a second shared label list; prefix it with its task (TASK=0=neg,1=pos) to give one task its own labels.");
                shared = Verbalizer.Parse(spec);
            }
        }
        if (shared is not null)
            foreach (string task in tasks) perTask.TryAdd(task, shared);
        return new TaskSpecs(tasks, paths, perTask);
    }
}

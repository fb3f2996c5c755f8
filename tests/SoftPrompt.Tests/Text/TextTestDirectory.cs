using System.Text;

namespace SoftPrompt.Tests.Text;

/// <summary>Gives each test a fresh temp directory, removed in TearDown.</summary>
public abstract class TextTestDirectory
{
    protected string Dir { get; private set; } = "";

    [SetUp]
    public void CreateDirectory() => Dir = Directory.CreateTempSubdirectory("softprompt-text-").FullName;

    [TearDown]
    public void DeleteDirectory()
    {
        if (Directory.Exists(Dir)) Directory.Delete(Dir, recursive: true);
    }

    protected string PathOf(string name) => Path.Combine(Dir, name);

    protected string Write(string name, string text)
    {
        string path = PathOf(name);
        File.WriteAllText(path, text, new UTF8Encoding(false));
        return path;
    }

    protected string WriteBytes(string name, byte[] bytes)
    {
        string path = PathOf(name);
        File.WriteAllBytes(path, bytes);
        return path;
    }
}

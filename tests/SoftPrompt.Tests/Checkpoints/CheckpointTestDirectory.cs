using System.Buffers.Binary;
using System.Text;

namespace SoftPrompt.Tests.Checkpoints;

/// <summary>Gives each test a fresh temp directory, removed in TearDown, plus byte-level file builders.</summary>
public abstract class CheckpointTestDirectory
{
    protected string Dir { get; private set; } = "";

    [SetUp]
    public void CreateDirectory() => Dir = Directory.CreateTempSubdirectory("softprompt-ckpt-").FullName;

    [TearDown]
    public void DeleteDirectory()
    {
        if (Directory.Exists(Dir)) Directory.Delete(Dir, recursive: true);
    }

    protected string PathOf(string name) => Path.Combine(Dir, name);

    /// <summary>A safetensors file as raw bytes: 8-byte LE header length, the header text, then <paramref name="dataBytes"/> bytes 0,1,2…</summary>
    protected static byte[] RawFile(string header, int dataBytes)
    {
        var json = Encoding.UTF8.GetBytes(header);
        var bytes = new byte[8 + json.Length + dataBytes];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, (ulong)json.Length);
        json.CopyTo(bytes, 8);
        for (int i = 0; i < dataBytes; i++) bytes[8 + json.Length + i] = (byte)i;
        return bytes;
    }

    protected string WriteRaw(string name, byte[] bytes)
    {
        string path = PathOf(name);
        File.WriteAllBytes(path, bytes);
        return path;
    }

    protected string[] TempFiles() => Directory.GetFiles(Dir, "*.tmp-*");
}

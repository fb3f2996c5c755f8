using System.Buffers.Binary;
using System.Text;

namespace SoftPrompt.Checkpoints;

/// <summary>A storage as torch.save's persistent id names it: ('storage', torch.FloatStorage, key, location, numel).</summary>
internal sealed record TorchStorage(string Key, SafeTensorDType DType, long ElementCount);

/// <summary>A tensor rebuilt by torch._utils._rebuild_tensor[_v2]: a view of <see cref="Storage"/> in elements.</summary>
internal sealed record TorchTensor(TorchStorage Storage, long StorageOffset, long[] Shape, long[] Stride);

/// <summary>
/// Reads the data.pkl of a torch.save zip archive as a state dict (name → tensor) without executing anything. Python's
/// unpickler calls whatever a pickle names; this one is a small stack machine that knows only the opcodes (protocols
/// 2–4) and the handful of globals a state dict is made of — collections.OrderedDict, torch._utils._rebuild_tensor_v2
/// (and _rebuild_tensor, _rebuild_parameter) and torch's typed storage classes — and refuses every other global,
/// every call of something else, and object construction (INST, OBJ, NEWOBJ, BUILD on anything but a dict) with a
/// <see cref="CheckpointException"/> that names the file, the byte offset and the opcode or global.
/// </summary>
internal sealed class StateDictUnpickler
{
    private static readonly Dictionary<string, SafeTensorDType> StorageTypes = new(StringComparer.Ordinal)
    {
        ["FloatStorage"] = SafeTensorDType.F32, ["HalfStorage"] = SafeTensorDType.F16, ["BFloat16Storage"] = SafeTensorDType.BF16,
        ["DoubleStorage"] = SafeTensorDType.F64, ["LongStorage"] = SafeTensorDType.I64, ["IntStorage"] = SafeTensorDType.I32,
        ["ShortStorage"] = SafeTensorDType.I16, ["CharStorage"] = SafeTensorDType.I8, ["ByteStorage"] = SafeTensorDType.U8,
        ["BoolStorage"] = SafeTensorDType.BOOL,
    };

    /// <summary>The callables REDUCE may apply; any other global is refused when it is named.</summary>
    private enum Callable { OrderedDict, RebuildTensorV2, RebuildTensor, RebuildParameter }

    private sealed record StorageClass(string Name, SafeTensorDType DType);

    /// <summary>A dict or OrderedDict under construction: keys in insertion order.</summary>
    private sealed class PickleDict : List<KeyValuePair<object?, object?>>;

    private sealed class Mark
    {
        public static readonly Mark Instance = new();
    }

    private const string Refusal = "refusing to load it: a pickle can run arbitrary code, so this reader accepts only the tensors of a state dict";

    private readonly string _path;
    private readonly byte[] _data;
    private int _position;
    private int _opcodeAt;
    private readonly List<object?> _stack = [];
    private readonly Dictionary<long, object?> _memo = [];
    private readonly Dictionary<string, TorchStorage> _storages = new(StringComparer.Ordinal);

    private StateDictUnpickler(string path, byte[] data)
    {
        _path = path;
        _data = data;
    }

    /// <param name="path">The archive, for messages.</param>
    public static List<(string Name, TorchTensor Tensor)> Read(string path, byte[] pickle) => new StateDictUnpickler(path, pickle).Run();

    private List<(string Name, TorchTensor Tensor)> Run()
    {
        while (true)
        {
            _opcodeAt = _position;
            byte opcode = U8();
            switch (opcode)
            {
                case 0x80: // PROTO
                    byte protocol = U8();
                    if (protocol is < 2 or > 5) throw Fail($"pickle protocol {protocol} is not one torch.save writes (2 by default)");
                    break;
                case 0x95: Take(8); break; // FRAME: a length hint only
                case (byte)'.': return StateDict(Pop()); // STOP
                case (byte)'(': Push(Mark.Instance); break;
                case (byte)'}': Push(new PickleDict()); break;
                case (byte)']': Push(new List<object?>()); break;
                case (byte)')': Push(Array.Empty<object?>()); break;
                case (byte)'t': Push(PopToMark().ToArray()); break;
                case 0x85: Push(new[] { Pop() }); break;
                case 0x86: { var b = Pop(); var a = Pop(); Push(new[] { a, b }); break; }
                case 0x87: { var c = Pop(); var b = Pop(); var a = Pop(); Push(new[] { a, b, c }); break; }
                case (byte)'N': Push(null); break;
                case 0x88: Push(true); break;
                case 0x89: Push(false); break;
                case (byte)'K': Push((long)U8()); break;
                case (byte)'M': Push((long)BinaryPrimitives.ReadUInt16LittleEndian(Take(2))); break;
                case (byte)'J': Push((long)BinaryPrimitives.ReadInt32LittleEndian(Take(4))); break;
                case 0x8a: Push(Long1()); break;
                case (byte)'G': Push(BinaryPrimitives.ReadDoubleBigEndian(Take(8))); break;
                case (byte)'X': Push(Text(BinaryPrimitives.ReadUInt32LittleEndian(Take(4)))); break;
                case 0x8c: Push(Text(U8())); break;
                case 0x8d: Push(Text(BinaryPrimitives.ReadUInt64LittleEndian(Take(8)))); break;
                case (byte)'q': _memo[U8()] = Peek(); break;
                case (byte)'r': _memo[BinaryPrimitives.ReadUInt32LittleEndian(Take(4))] = Peek(); break;
                case 0x94: _memo[_memo.Count] = Peek(); break; // MEMOIZE
                case (byte)'h': Push(Recall(U8())); break;
                case (byte)'j': Push(Recall(BinaryPrimitives.ReadUInt32LittleEndian(Take(4)))); break;
                case (byte)'c': Push(Global(Line(), Line())); break;
                case 0x93: { var name = Pop(); var module = Pop(); Push(Global(module as string ?? throw Fail("STACK_GLOBAL needs two strings"), name as string ?? throw Fail("STACK_GLOBAL needs two strings"))); break; }
                case (byte)'Q': Push(Storage(Pop())); break; // BINPERSID
                case (byte)'R': { var args = Pop(); var callable = Pop(); Push(Reduce(callable, args)); break; }
                case (byte)'s': { var value = Pop(); var key = Pop(); DictOnStack("SETITEM").Add(new(key, value)); break; }
                case (byte)'u':
                {
                    var items = PopToMark();
                    if (items.Count % 2 != 0) throw Fail("SETITEMS with an odd number of items");
                    var dict = DictOnStack("SETITEMS");
                    for (int i = 0; i < items.Count; i += 2) dict.Add(new(items[i], items[i + 1]));
                    break;
                }
                case (byte)'a': { var value = Pop(); ListOnStack("APPEND").Add(value); break; }
                case (byte)'e': { var items = PopToMark(); ListOnStack("APPENDS").AddRange(items); break; }
                case (byte)'b': // BUILD: state dicts carry `_metadata` (per-module versions) as the OrderedDict's attribute
                    Pop();
                    if (Peek() is not PickleDict) throw Fail($"BUILD (setting the state of an object) on {Describe(Peek())}; {Refusal}");
                    break;
                default:
                    throw Fail($"opcode {OpcodeName(opcode)} is not used by a state dict; {Refusal}");
            }
        }
    }

    private object Global(string module, string name)
    {
        switch (module, name)
        {
            case ("collections", "OrderedDict"): return Callable.OrderedDict;
            case ("torch._utils", "_rebuild_tensor_v2"): return Callable.RebuildTensorV2;
            case ("torch._utils", "_rebuild_tensor"): return Callable.RebuildTensor;
            case ("torch._utils", "_rebuild_parameter"): return Callable.RebuildParameter;
        }
        if (module == "torch" && StorageTypes.TryGetValue(name, out var dtype)) return new StorageClass(name, dtype);
        if (module == "torch" && name.EndsWith("Storage", StringComparison.Ordinal))
            throw Fail($"storage type torch.{name} has no safetensors dtype (F32, F16, BF16, F64 and integer/bool storages are read); convert the tensors to a supported dtype in Python");
        throw Fail($"global '{module}.{name}' is not part of a PyTorch state dict; {Refusal}");
    }

    private object? Reduce(object? callable, object? args)
    {
        if (callable is not Callable known) throw Fail($"REDUCE calls {Describe(callable)}, which is not a state dict's callable; {Refusal}");
        if (args is not object?[] a) throw Fail($"REDUCE of {known} with {Describe(args)} instead of an argument tuple");
        switch (known)
        {
            case Callable.OrderedDict:
                if (a.Length != 0) throw Fail("collections.OrderedDict is called with arguments; torch.save writes an empty one and fills it");
                return new PickleDict();
            case Callable.RebuildParameter: // (data, requires_grad, backward_hooks): a Parameter is its data here
                if (a.Length < 1 || a[0] is not TorchTensor data) throw Fail("torch._utils._rebuild_parameter without a tensor");
                return data;
            default: // _rebuild_tensor(storage, offset, size, stride) and _v2(…, requires_grad, backward_hooks[, metadata])
                int expected = known == Callable.RebuildTensor ? 4 : 6;
                if (a.Length < expected || a.Length > 7 || a[0] is not TorchStorage storage)
                    throw Fail($"torch._utils.{(known == Callable.RebuildTensor ? "_rebuild_tensor" : "_rebuild_tensor_v2")} with arguments ({string.Join(", ", a.Select(Describe))}); expected (storage, offset, size, stride, …)");
                long offset = a[1] as long? ?? throw Fail("a tensor's storage offset is not an integer");
                return new TorchTensor(storage, offset, Longs(a[2], "size"), Longs(a[3], "stride"));
        }
    }

    /// <summary>BINPERSID: ('storage', storage class, key, location, numel). Tied weights name one key twice.</summary>
    private TorchStorage Storage(object? pid)
    {
        if (pid is not object?[] { Length: 5 } t || t[0] as string != "storage" || t[1] is not StorageClass type || t[2] is not string key || t[4] is not long count)
            throw Fail($"persistent id {Describe(pid)} is not a storage reference ('storage', torch.XStorage, key, location, numel)");
        if (count < 0) throw Fail($"storage '{key}' declares {count} elements");
        var storage = new TorchStorage(key, type.DType, count);
        if (_storages.TryGetValue(key, out var seen))
        {
            if (seen != storage) throw Fail($"storage '{key}' is referenced as {seen.DType}×{seen.ElementCount} and as {storage.DType}×{storage.ElementCount}");
            return seen;
        }
        _storages.Add(key, storage);
        return storage;
    }

    private List<(string Name, TorchTensor Tensor)> StateDict(object? top)
    {
        if (top is not PickleDict dict)
            throw Fail($"the file holds {Describe(top)}, not a state dict (a dict of tensors); save model.state_dict()");
        var tensors = new List<(string, TorchTensor)>(dict.Count);
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (key, value) in dict)
        {
            if (key is not string name) throw Fail($"state dict key {Describe(key)} is not a string");
            if (value is not TorchTensor tensor) throw Fail($"state dict entry '{name}' is {Describe(value)}, not a tensor; save only the model's state_dict()");
            if (!names.Add(name)) throw Fail($"state dict key '{name}' appears twice");
            tensors.Add((name, tensor));
        }
        return tensors;
    }

    private long[] Longs(object? value, string what) =>
        value is object?[] items && items.All(i => i is long)
            ? items.Select(i => (long)i!).ToArray()
            : throw Fail($"a tensor's {what} is {Describe(value)}, not a tuple of integers");

    private long Long1()
    {
        int length = U8();
        if (length > 8) throw Fail($"a {length}-byte integer is too large for a tensor field");
        Span<byte> buffer = stackalloc byte[8];
        var bytes = Take(length);
        bytes.CopyTo(buffer);
        if (length > 0 && (sbyte)bytes[length - 1] < 0) buffer[length..].Fill(0xFF); // two's complement sign extension
        return BinaryPrimitives.ReadInt64LittleEndian(buffer);
    }

    private string Text(ulong length)
    {
        if (length > (ulong)(_data.Length - _position)) throw Truncated();
        return Encoding.UTF8.GetString(Take((int)length));
    }

    /// <summary>A GLOBAL operand: text up to the next newline.</summary>
    private string Line()
    {
        int end = Array.IndexOf(_data, (byte)'\n', _position);
        if (end < 0) throw Truncated();
        string text = Encoding.UTF8.GetString(_data, _position, end - _position);
        _position = end + 1;
        return text;
    }

    private byte U8() => Take(1)[0];

    private ReadOnlySpan<byte> Take(int count)
    {
        if (count > _data.Length - _position) throw Truncated();
        var span = _data.AsSpan(_position, count);
        _position += count;
        return span;
    }

    private void Push(object? value) => _stack.Add(value);

    private object? Peek() => _stack.Count > 0 && _stack[^1] is not Mark ? _stack[^1] : throw Fail("the stack is empty");

    private object? Pop()
    {
        var value = Peek();
        _stack.RemoveAt(_stack.Count - 1);
        return value;
    }

    private List<object?> PopToMark()
    {
        int mark = _stack.FindLastIndex(v => v is Mark);
        if (mark < 0) throw Fail("no MARK to pop to");
        var items = _stack.GetRange(mark + 1, _stack.Count - mark - 1);
        _stack.RemoveRange(mark, _stack.Count - mark);
        return items;
    }

    private object? Recall(long index) => _memo.TryGetValue(index, out var value) ? value : throw Fail($"memo slot {index} was never stored");

    private PickleDict DictOnStack(string opcode) => Peek() as PickleDict ?? throw Fail($"{opcode} on {Describe(Peek())}; only dicts are filled this way in a state dict");

    private List<object?> ListOnStack(string opcode) => Peek() as List<object?> ?? throw Fail($"{opcode} on {Describe(Peek())}; only lists are appended to");

    private static string Describe(object? value) => value switch
    {
        null => "None",
        string s => $"the string '{s}'",
        long n => $"the integer {n}",
        bool b => b ? "True" : "False",
        double d => $"the float {d}",
        Callable c => c.ToString(),
        StorageClass s => $"torch.{s.Name}",
        TorchStorage s => $"storage '{s.Key}'",
        TorchTensor => "a tensor",
        PickleDict => "a dict",
        List<object?> => "a list",
        object?[] t => $"a {t.Length}-tuple",
        _ => value.GetType().Name,
    };

    private static string OpcodeName(byte opcode) => opcode switch
    {
        (byte)'i' => "INST",
        (byte)'o' => "OBJ",
        0x81 => "NEWOBJ",
        0x92 => "NEWOBJ_EX",
        (byte)'P' => "PERSID (text)",
        0x82 or 0x83 or 0x84 => "EXT",
        (byte)'S' or (byte)'T' or (byte)'U' => "(byte) STRING",
        (byte)'I' or (byte)'L' or (byte)'F' => "(text) INT/LONG/FLOAT",
        (byte)'V' => "UNICODE (text)",
        (byte)'g' or (byte)'p' => "GET/PUT (text)",
        _ => $"0x{opcode:x2}",
    } + (opcode is >= 0x20 and < 0x7f ? $" ('{(char)opcode}')" : "");

    private CheckpointException Truncated() => Fail("the pickle ends in the middle of an instruction (truncated data.pkl)");

    private CheckpointException Fail(string what) => new($"{_path}: data.pkl byte {_opcodeAt}: {what}.");
}

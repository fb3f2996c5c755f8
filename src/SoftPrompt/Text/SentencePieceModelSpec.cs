using System.Text;

namespace SoftPrompt.Text;

/// <summary>
/// The few fields of a SentencePiece ModelProto (sentencepiece_model.proto) that the loader needs: the piece count,
/// the model type and the special-token ids and pieces in trainer_spec. Read straight from the protobuf wire format;
/// unknown fields are skipped, as any protobuf reader does.
/// </summary>
internal sealed record SentencePieceModelSpec(int PieceCount, int ModelType, int UnkId, int BosId, int EosId, int PadId,
    string UnkPiece, string BosPiece, string EosPiece)
{
    public const int Unigram = 1, Bpe = 2;

    // Field numbers from sentencepiece_model.proto.
    private const int PiecesField = 1, TrainerSpecField = 2;
    private const int ModelTypeField = 3, UnkIdField = 40, BosIdField = 41, EosIdField = 42, PadIdField = 43;
    private const int UnkPieceField = 45, BosPieceField = 46, EosPieceField = 47;

    public static SentencePieceModelSpec Read(byte[] model, string path)
    {
        // Defaults are the proto's declared defaults.
        var spec = new SentencePieceModelSpec(0, Unigram, 0, 1, 2, -1, "<unk>", "<s>", "</s>");
        int pieces = 0;
        try
        {
            var top = new ProtoReader(model);
            while (top.Next(out int field, out int wire))
            {
                if (field == PiecesField && wire == ProtoReader.LengthDelimited) { top.Skip(wire); pieces++; }
                else if (field == TrainerSpecField && wire == ProtoReader.LengthDelimited) spec = ReadTrainerSpec(top.Bytes(), spec);
                else top.Skip(wire);
            }
        }
        catch (FormatException e) { throw new DataException($"{path}: not a SentencePiece model ({e.Message}); the file is corrupt or not a .model protobuf.", e); }
        if (pieces == 0) throw new DataException($"{path}: the SentencePiece model has no pieces; the file is corrupt or not a .model protobuf.");
        if (spec.ModelType is not (Unigram or Bpe)) throw new DataException($"{path}: SentencePiece model type {spec.ModelType} is not supported (only Unigram = 1 and BPE = 2 are).");
        if (spec.UnkId < 0 || spec.UnkId >= pieces) throw new DataException($"{path}: trainer_spec.unk_id = {spec.UnkId} is not a piece; SentencePiece models need an unknown piece.");
        foreach (var (role, id) in new[] { ("bos_id", spec.BosId), ("eos_id", spec.EosId), ("pad_id", spec.PadId) })
            if (id >= pieces) throw new DataException($"{path}: trainer_spec.{role} = {id} but the model has only {pieces} pieces; the file is corrupt.");
        return spec with { PieceCount = pieces };
    }

    /// <summary>
    /// Microsoft.ML.Tokenizers (2.0.1) indexes its tables with bos_id and eos_id even when a model has none (T5 sets
    /// bos_id = -1) and crashes. Appending a second trainer_spec that points the missing role at an existing special
    /// piece avoids that: protobuf merges repeated message fields, and we never ask the package to emit BOS/EOS.
    /// </summary>
    public byte[] WithAllRolesPresent()
    {
        if (BosId >= 0 && EosId >= 0) return [];
        var patch = new List<byte>();
        (int eosId, string eosPiece) = EosId >= 0 ? (EosId, EosPiece) : (UnkId, UnkPiece);
        (int bosId, string bosPiece) = BosId >= 0 ? (BosId, BosPiece) : (eosId, eosPiece);
        ProtoWriter.Int(patch, BosIdField, bosId);
        ProtoWriter.String(patch, BosPieceField, bosPiece);
        ProtoWriter.Int(patch, EosIdField, eosId);
        ProtoWriter.String(patch, EosPieceField, eosPiece);
        var wrapped = new List<byte>();
        ProtoWriter.Bytes(wrapped, TrainerSpecField, [.. patch]);
        return [.. wrapped];
    }

    private static SentencePieceModelSpec ReadTrainerSpec(ReadOnlySpan<byte> bytes, SentencePieceModelSpec spec)
    {
        var reader = new ProtoReader(bytes.ToArray());
        while (reader.Next(out int field, out int wire))
        {
            spec = (field, wire) switch
            {
                (ModelTypeField, ProtoReader.Varint) => spec with { ModelType = reader.Int32() },
                (UnkIdField, ProtoReader.Varint) => spec with { UnkId = reader.Int32() },
                (BosIdField, ProtoReader.Varint) => spec with { BosId = reader.Int32() },
                (EosIdField, ProtoReader.Varint) => spec with { EosId = reader.Int32() },
                (PadIdField, ProtoReader.Varint) => spec with { PadId = reader.Int32() },
                (UnkPieceField, ProtoReader.LengthDelimited) => spec with { UnkPiece = Encoding.UTF8.GetString(reader.Bytes()) },
                (BosPieceField, ProtoReader.LengthDelimited) => spec with { BosPiece = Encoding.UTF8.GetString(reader.Bytes()) },
                (EosPieceField, ProtoReader.LengthDelimited) => spec with { EosPiece = Encoding.UTF8.GetString(reader.Bytes()) },
                _ => Skipped(reader, wire, spec),
            };
        }
        return spec;
    }

    private static SentencePieceModelSpec Skipped(ProtoReader reader, int wire, SentencePieceModelSpec spec)
    {
        reader.Skip(wire);
        return spec;
    }
}

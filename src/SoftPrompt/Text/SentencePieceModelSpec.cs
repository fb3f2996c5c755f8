using System.Text;

namespace SoftPrompt.Text;

/// <summary>One vocabulary entry of a SentencePiece model: its text, its score (log probability or merge priority) and its type.</summary>
internal readonly record struct SentencePiece(string Piece, float Score, SentencePieceType Type);

/// <summary>ModelProto.SentencePiece.Type.</summary>
internal enum SentencePieceType { Normal = 1, Unknown = 2, Control = 3, UserDefined = 4, Unused = 5, Byte = 6 }

/// <summary>
/// What encoding and decoding need from a SentencePiece ModelProto (sentencepiece_model.proto): the pieces, the
/// trainer_spec's model type, special-token ids and byte fallback, and the normalizer_spec. Read straight from the
/// protobuf wire format; unknown fields are skipped, as any protobuf reader does.
/// </summary>
internal sealed record SentencePieceModelSpec(SentencePiece[] Pieces, int ModelType, int UnkId, int BosId, int EosId, int PadId,
    bool ByteFallback, bool TreatWhitespaceAsSuffix, byte[] PrecompiledCharsmap, bool AddDummyPrefix, bool RemoveExtraWhitespaces,
    bool EscapeWhitespaces)
{
    public const int Unigram = 1, Bpe = 2;

    // Field numbers from sentencepiece_model.proto.
    private const int PiecesField = 1, TrainerSpecField = 2, NormalizerSpecField = 3;
    private const int PieceField = 1, ScoreField = 2, TypeField = 3;
    private const int ModelTypeField = 3, TreatWhitespaceAsSuffixField = 24, ByteFallbackField = 35;
    private const int BosIdField = 41, EosIdField = 42, PadIdField = 43;
    private const int CharsmapField = 2, AddDummyPrefixField = 3, RemoveExtraWhitespacesField = 4, EscapeWhitespacesField = 5;

    public static SentencePieceModelSpec Read(byte[] model, string path)
    {
        // Defaults are the proto's declared defaults.
        var spec = new SentencePieceModelSpec([], Unigram, 0, 1, 2, -1, ByteFallback: false, TreatWhitespaceAsSuffix: false,
            PrecompiledCharsmap: [], AddDummyPrefix: true, RemoveExtraWhitespaces: true, EscapeWhitespaces: true);
        var pieces = new List<SentencePiece>();
        try
        {
            var top = new ProtoReader(model);
            while (top.Next(out int field, out int wire))
            {
                if (field == PiecesField && wire == ProtoReader.LengthDelimited) pieces.Add(ReadPiece(top.Bytes()));
                else if (field == TrainerSpecField && wire == ProtoReader.LengthDelimited) spec = ReadTrainerSpec(top.Bytes(), spec);
                else if (field == NormalizerSpecField && wire == ProtoReader.LengthDelimited) spec = ReadNormalizerSpec(top.Bytes(), spec);
                else top.Skip(wire);
            }
        }
        catch (Exception e) when (e is FormatException or ArgumentException)
        {
            throw new DataException($"{path}: not a SentencePiece model ({e.Message}); the file is corrupt or not a .model protobuf.", e);
        }
        int count = pieces.Count;
        if (count == 0) throw new DataException($"{path}: the SentencePiece model has no pieces; the file is corrupt or not a .model protobuf.");
        // sentencepiece refuses a piece defined twice; kept, its second id would encode but never decode (found by fuzzing).
        var first = new Dictionary<string, int>(count, StringComparer.Ordinal);
        for (int i = 0; i < count; i++)
            if (!first.TryAdd(pieces[i].Piece, i))
                throw new DataException($"{path}: piece {VocabFiles.Quote(pieces[i].Piece)} is defined twice (ids {first[pieces[i].Piece]} and {i}); the file is corrupt.");
        if (spec.ModelType is not (Unigram or Bpe)) throw new DataException($"{path}: SentencePiece model type {spec.ModelType} is not supported (only Unigram = 1 and BPE = 2 are).");
        // sentencepiece takes <unk> from the piece types, not from trainer_spec.unk_id.
        int[] unknown = [.. Enumerable.Range(0, count).Where(i => pieces[i].Type == SentencePieceType.Unknown)];
        if (unknown.Length != 1) throw new DataException($"{path}: the model has {unknown.Length} pieces of type UNKNOWN; SentencePiece models need exactly one unknown piece.");
        foreach (var (role, id) in new[] { ("bos_id", spec.BosId), ("eos_id", spec.EosId), ("pad_id", spec.PadId) })
            if (id >= count) throw new DataException($"{path}: trainer_spec.{role} = {id} but the model has only {count} pieces; the file is corrupt.");
        if (spec.TreatWhitespaceAsSuffix) throw new DataException($"{path}: trainer_spec.treat_whitespace_as_suffix is not supported.");
        if (pieces.FirstOrDefault(p => p.Type == SentencePieceType.Byte && ByteOf(p.Piece) is null) is { Piece: { } badByte })
            throw new DataException($"{path}: byte piece {VocabFiles.Quote(badByte)} is not of the form <0xXX>; the file is corrupt.");
        int bytePieces = pieces.Count(p => p.Type == SentencePieceType.Byte);
        if (spec.ByteFallback && bytePieces != 256) throw new DataException($"{path}: byte_fallback is on but the model has {bytePieces} byte pieces instead of 256; the file is corrupt.");
        return spec with { Pieces = [.. pieces], UnkId = unknown[0] };
    }

    /// <summary>The byte a byte piece stands for: &lt;0x41&gt; is 0x41.</summary>
    public static byte? ByteOf(string piece) =>
        piece.Length == 6 && piece.StartsWith("<0x") && piece[5] == '>' && byte.TryParse(piece.AsSpan(3, 2), System.Globalization.NumberStyles.HexNumber, null, out byte b) ? b : null;

    private static SentencePiece ReadPiece(ReadOnlySpan<byte> bytes)
    {
        var reader = new ProtoReader(bytes.ToArray());
        string piece = "";
        float score = 0;
        var type = SentencePieceType.Normal;
        while (reader.Next(out int field, out int wire))
        {
            if (field == PieceField && wire == ProtoReader.LengthDelimited) piece = Utf8Text(reader.Bytes());
            else if (field == ScoreField && wire == ProtoReader.Fixed32) score = reader.Float();
            else if (field == TypeField && wire == ProtoReader.Varint) type = (SentencePieceType)reader.Int32();
            else reader.Skip(wire);
        }
        if (piece.Length == 0) throw new FormatException("a piece is empty");
        return new SentencePiece(piece, score, type);
    }

    private static SentencePieceModelSpec ReadTrainerSpec(ReadOnlySpan<byte> bytes, SentencePieceModelSpec spec)
    {
        var reader = new ProtoReader(bytes.ToArray());
        while (reader.Next(out int field, out int wire))
        {
            spec = (field, wire) switch
            {
                (ModelTypeField, ProtoReader.Varint) => spec with { ModelType = reader.Int32() },
                (TreatWhitespaceAsSuffixField, ProtoReader.Varint) => spec with { TreatWhitespaceAsSuffix = reader.Int32() != 0 },
                (ByteFallbackField, ProtoReader.Varint) => spec with { ByteFallback = reader.Int32() != 0 },
                (BosIdField, ProtoReader.Varint) => spec with { BosId = reader.Int32() },
                (EosIdField, ProtoReader.Varint) => spec with { EosId = reader.Int32() },
                (PadIdField, ProtoReader.Varint) => spec with { PadId = reader.Int32() },
                _ => Skipped(reader, wire, spec),
            };
        }
        return spec;
    }

    private static SentencePieceModelSpec ReadNormalizerSpec(ReadOnlySpan<byte> bytes, SentencePieceModelSpec spec)
    {
        var reader = new ProtoReader(bytes.ToArray());
        while (reader.Next(out int field, out int wire))
        {
            spec = (field, wire) switch
            {
                (CharsmapField, ProtoReader.LengthDelimited) => spec with { PrecompiledCharsmap = reader.Bytes().ToArray() },
                (AddDummyPrefixField, ProtoReader.Varint) => spec with { AddDummyPrefix = reader.Int32() != 0 },
                (RemoveExtraWhitespacesField, ProtoReader.Varint) => spec with { RemoveExtraWhitespaces = reader.Int32() != 0 },
                (EscapeWhitespacesField, ProtoReader.Varint) => spec with { EscapeWhitespaces = reader.Int32() != 0 },
                _ => Skipped(reader, wire, spec),
            };
        }
        return spec;
    }

    private static string Utf8Text(ReadOnlySpan<byte> bytes) =>
        new UTF8Encoding(false, throwOnInvalidBytes: true).GetString(bytes);

    private static SentencePieceModelSpec Skipped(ProtoReader reader, int wire, SentencePieceModelSpec spec)
    {
        reader.Skip(wire);
        return spec;
    }
}

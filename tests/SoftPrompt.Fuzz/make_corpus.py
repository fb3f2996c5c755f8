#!/usr/bin/env python3
"""Writes the seed corpus of every fuzz target (tests/SoftPrompt.Fuzz/corpus/<target>/seed-*) from the test fixtures
and a few hand-made inputs. Needs only the Python standard library (the torch checkpoint seed is pickled against
stand-in torch classes). Run from anywhere; rewrites the seed-* files only, never the found or crash inputs."""
import io, json, os, pickle, shutil, struct, sys, types, zipfile, collections
from pathlib import Path

ROOT = Path(__file__).resolve().parent
FIX = ROOT.parent / "SoftPrompt.Tests" / "fixtures"
OUT = ROOT / "corpus"


def put(target, name, data):
    d = OUT / target
    d.mkdir(parents=True, exist_ok=True)
    (d / f"seed-{name}").write_bytes(data if isinstance(data, bytes) else data.encode())


def safetensors(tensors, metadata=None):
    header, blob = {}, b""
    if metadata:
        header["__metadata__"] = metadata
    for name, (dtype, shape, data) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(blob), len(blob) + len(data)]}
        blob += data
    h = json.dumps(header, separators=(",", ":")).encode()
    return struct.pack("<Q", len(h)) + h + blob


def floats(*v):
    return struct.pack(f"<{len(v)}f", *v)


# --- safetensors / prompt / peft
for f in ["gpt2/sgd/init.safetensors", "t5/sgd/init.safetensors", "gpt2/tiny/case-c.safetensors"]:
    put("safetensors", f.replace("/", "-"), (FIX / f).read_bytes())
put("safetensors", "mixed-dtypes", safetensors({
    "a": ("F32", [2, 2], floats(1, 2, 3, 4)), "b": ("F16", [2], b"\x00\x3c\x00\x40"), "c": ("BF16", [1], b"\x80\x3f"),
    "d": ("I64", [2], struct.pack("<2q", 1, -2)), "e": ("I32", [0], b""), "f": ("F64", [1], struct.pack("<d", 0.5))},
    {"format": "pt"}))
prompt = safetensors({"prompt_embeddings": ("F32", [2, 3], floats(*range(6)))}, {"format": "softprompt-prompt/1", "model_family": "gpt2"})
put("prompt", "gpt2-sgd-init", (FIX / "gpt2/sgd/init.safetensors").read_bytes())
put("prompt", "small", prompt)
peft_config = {"peft_type": "PROMPT_TUNING", "task_type": "CAUSAL_LM", "num_virtual_tokens": 2, "token_dim": 3,
               "num_transformer_submodules": 1, "prompt_tuning_init": "TEXT", "prompt_tuning_init_text": "hi",
               "base_model_name_or_path": "gpt2"}
put("peft", "causal", json.dumps(peft_config).encode() + b"\0" + prompt)
seq = dict(peft_config, task_type="SEQ_2_SEQ_LM", num_transformer_submodules=2, num_virtual_tokens=1)
put("peft", "seq2seq", json.dumps(seq).encode() + b"\0" + prompt)

# --- configs
for family, dirs in {"gpt2": ["gpt2/tiny", "gpt2/tiny-layer-scaled"], "llama": ["llama/tiny", "llama/tiny-qwen2", "llama/tiny-tied-llama3"],
                     "t5": ["t5/v1_0", "t5/v1_1", "t5/mt5"]}.items():
    for d in dirs:
        put(f"config-{family}", d.replace("/", "-") + ".json", (FIX / d / "config.json").read_bytes())

# --- tokenizers
for name in ["tiny-ignore-merges-true", "tiny-ignore-merges-false"]:
    tok = json.loads((FIX / f"tokenizers/{name}.json").read_text())["tokenizer"]
    put("tokenizer-json", name, json.dumps(tok, ensure_ascii=False))
    model = tok["model"]
    merges = "#version: 0.2\n" + "".join((m if isinstance(m, str) else " ".join(m)) + "\n" for m in model["merges"])
    put("vocab-merges", name, json.dumps(model["vocab"], ensure_ascii=False).encode() + b"\0" + merges.encode())
# The pre-tokenizers, normalizers and post-processors of the bigger fixtures over the tiny model (small seeds).
tiny = json.loads((FIX / "tokenizers/tiny-ignore-merges-false.json").read_text())["tokenizer"]
for name in ["gpt4o-style", "qwen2-style", "smollm-style", "gpt2-prefix-space"]:
    tok = json.loads((FIX / f"tokenizers/{name}.json").read_text())["tokenizer"]
    tok["model"], tok["added_tokens"] = tiny["model"], tiny["added_tokens"]
    put("tokenizer-json", name, json.dumps(tok, ensure_ascii=False))
# Unigram tokenizer.json (Metaspace first / never, Strip, Replace, added tokens, byte fallback) without the byte pieces.
for name in ["unigram-byte-fallback-first", "unigram-never-unsplit"]:
    tok = json.loads((FIX / f"unigram-json/{name}/tokenizer.json").read_text())
    tok["model"]["vocab"] = [v for v in tok["model"]["vocab"] if not v[0].startswith("<0x")]
    tok["added_tokens"] = [t for t in tok["added_tokens"] if t["id"] < len(tok["model"]["vocab"])]
    put("tokenizer-json", name, json.dumps(tok, ensure_ascii=False))
# A tiny T5-like Unigram with a two-rule character map (U+00A0 -> " ", U+FB01 -> "fi"; spm_train --normalization_rule_tsv),
# in both Metaspace layouts.
charsmap = ("AAQAAAAMAwDCjAIAoAUAAAAAAICsAAIAgQ0AAAIAAIAGAAAACQAAAAgAAAALAAAACgAAAA0AAAAMAAAADwAAAA4AAAARAAAAEAAA"
            "ABMAAAASAAAAFQAAABQAAAAXAAAAFgAAABkAAAAYAAAAGwAAABoAAAAdAAAAHAAAAB8AAAAeAAAAIQAAACAAAAAjAAAAIgAAACUA"
            "AAAkAAAAJwAAACYAAAApAAAAKAAAACsAAAAqAAAA7xACACwAAAAvAAAALgAAADEAAAAwAAAAMwAAADIAAAA1AAAANAAAADcAAAA2"
            "AAAAOQAAADgAAAA7AAAAOgAAAD0AAAA8AAAAPwAAAD4AAABBAAAAQAAAAEMAAABCAAAARQAAAEQAAABHAAAARgAAAEkAAABIAAAA"
            "SwAAAEoAAABNAAAATAAAAE8AAABOAAAAUQAAAFAAAABTAAAAUgAAAFUAAABUAAAAVwAAAFYAAABZAAAAWAAAAFsAAABaAAAAXQAA"
            "AFwAAABfAAAAXgAAAGEAAABgAAAAYwAAAGIAAABlAAAAZAAAAGcAAABmAAAAaQAAAGgAAABrAAAAagAAAG0AAABsAAAAbwAAAG4A"
            "AABxAAAAcAAAAHMAAAByAAAAdQAAAHQAAAB3AAAAdgAAAHkAAAB4AAAAewAAAHoAAAB9AAAAfAAAAH8AAAB+AAAAgQAAAIAAAACD"
            "AAAAggAAAIUAAACEAAAAhwAAAIYAAACJAAAAiAAAAIsAAACKAAAAjQAAAIwAAACPAAAAjgAAAJEAAACQAAAAkwAAAJIAAACVAAAA"
            "lAAAAJcAAACWAAAAmQAAAJgAAACbAAAAmgAAAJ0AAACcAAAAnwAAAJ4AAAChAAAAoAAAAKMAAACiAAAApQAAAKQAAACnAAAApgAA"
            "AKkAAACoAAAAqwAAAKoAAACtAAAArAAAAK8AAACuAAAAsQAAALAAAACzAAAAsgAAALUAAAC0AAAAtwAAALYAAAC5AAAAuAAAALsA"
            "AAC6AAAAvQAAALwAAAC/AAAAvgAAAMEAAADAAAAAwwAAAMIAAADFAAAAxAAAAMcAAADGAAAAyQAAAMgAAADLAAAAygAAAM0AAADM"
            "AAAAzwAAAM4AAADRAAAA0AAAANMAAADSAAAA1QAAANQAAADXAAAA1gAAANkAAADYAAAA2wAAANoAAADdAAAA3AAAAN8AAADeAAAA"
            "4QAAAOAAAADjAAAA4gAAAOUAAADkAAAA5wAAAOYAAADpAAAA6AAAAOsAAADqAAAA7QAAAOwAAADvAAAA7gAAAPEAAADwAAAA8wAA"
            "APIAAAD1AAAA9AAAAPcAAAD2AAAA+QAAAPgAAAD7AAAA+gAAAP0AAAD8AAAA/wAAAP4AAAAgAGZpAA=="
            )
tiny_unigram = {
    "version": "1.0", "added_tokens": [{"id": i, "content": c, "single_word": False, "lstrip": False, "rstrip": False, "normalized": False,
                                        "special": True} for i, c in enumerate(["<pad>", "</s>", "<unk>"])],
    "normalizer": {"type": "Sequence", "normalizers": [{"type": "Precompiled", "precompiled_charsmap": charsmap},
                                                       {"type": "Strip", "strip_left": False, "strip_right": True},
                                                       {"type": "Replace", "pattern": {"Regex": " {2,}"}, "content": "\u2581"}]},
    "pre_tokenizer": {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "first", "split": True},
    "decoder": {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "first", "split": True},
    "post_processor": {"type": "TemplateProcessing", "single": [{"Sequence": {"id": "A", "type_id": 0}}, {"SpecialToken": {"id": "</s>", "type_id": 0}}],
                       "pair": [], "special_tokens": {"</s>": {"id": "</s>", "ids": [1], "tokens": ["</s>"]}}},
    "model": {"type": "Unigram", "unk_id": 2, "byte_fallback": False, "vocab": [["<pad>", 0], ["</s>", 0], ["<unk>", 0], ["\u2581", -2],
              ["\u2581the", -1], ["\u2581hello", -1], ["\u2581wor", -1.5], ["ld", -1.5], ["h", -3], ["e", -3], ["l", -3], ["o", -3], ["<0x41>", -4]]},
}
put("tokenizer-json", "tiny-unigram", json.dumps(tiny_unigram, ensure_ascii=False))
tiny_unigram["normalizer"] = {"type": "Precompiled", "precompiled_charsmap": charsmap}
tiny_unigram["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [{"type": "WhitespaceSplit"},
                                 {"type": "Metaspace", "replacement": "\u2581", "add_prefix_space": True}]}
tiny_unigram["decoder"] = {"type": "Metaspace", "replacement": "\u2581", "add_prefix_space": True}
tiny_unigram["model"]["byte_fallback"] = True
put("tokenizer-json", "tiny-unigram-whitespace-split", json.dumps(tiny_unigram, ensure_ascii=False))
for name in ["bpe-user-defined.model", "unigram-user-defined.model"]:
    put("sentencepiece", name, (FIX / "sentencepiece" / name).read_bytes())

# --- data files
put("jsonl", "text", '{"sentence": "a fine film", "label": 1}\n\n{"sentence": "dull", "label": 0, "extra": [1, {"x": null}]}\n'
                     '{"sentence": "ok", "label": true, "n": 0.5}\n')
put("jsonl", "bad-rows", '{"a": "x"}\n[1, 2]\nnot json\n{"a": "\\u00e9"}\n')
for f in ["gpt2/sgd/train.jsonl", "t5/sgd/train.jsonl"]:
    put("pretokenized-jsonl", f.replace("/", "-"), (FIX / f).read_bytes())
put("pretokenized-jsonl", "input-only", '{"input_ids": [1, 2, 3]}\n{"input_ids": [4], "target_ids": []}\n')
put("csv", "simple", 'sentence,label\n"a ""quoted"", film",1\nplain,0\n"multi\nline",1\n')
put("csv", "tabs", "sentence\tlabel\nfoo\t1\nbar\t0\n")
put("csv", "ragged", "a,b\n1\n1,2,3\n\"unterminated\n")

# --- PyTorch: a state dict pickled against stand-ins for torch's classes, zipped the way torch.save lays it out
torch = types.ModuleType("torch"); utils = types.ModuleType("torch._utils")
sys.modules["torch"], sys.modules["torch._utils"] = torch, utils
class FloatStorage: pass
class LongStorage: pass
FloatStorage.__module__ = LongStorage.__module__ = "torch"
torch.FloatStorage, torch.LongStorage = FloatStorage, LongStorage
def _rebuild_tensor_v2(*a): pass
_rebuild_tensor_v2.__module__ = "torch._utils"
utils._rebuild_tensor_v2 = _rebuild_tensor_v2

class Tensor:
    def __init__(self, key, cls, numel, offset, size, stride):
        self.key, self.cls, self.numel, self.args = key, cls, numel, (offset, size, stride)
    def __reduce_ex__(self, protocol):
        return (_rebuild_tensor_v2, (StorageRef(self.key, self.cls, self.numel),) + self.args + (False, collections.OrderedDict()))
class StorageRef:
    def __init__(self, key, cls, numel): self.pid = ("storage", cls, key, "cpu", numel)
class Pickler(pickle.Pickler):
    def persistent_id(self, obj): return obj.pid if isinstance(obj, StorageRef) else None

def torch_pickle(state):
    buf = io.BytesIO(); Pickler(buf, protocol=2).dump(state); return buf.getvalue()

state = collections.OrderedDict()
state["wte.weight"] = Tensor("0", FloatStorage, 6, 0, (2, 3), (3, 1))
state["lm_head.weight"] = Tensor("0", FloatStorage, 6, 0, (2, 3), (3, 1))   # tied: same storage
state["bias"] = Tensor("1", FloatStorage, 4, 1, (3,), (1,))                  # storage offset
state["ids"] = Tensor("2", LongStorage, 2, 0, (2,), (1,))
state._metadata = collections.OrderedDict({"": {"version": 1}})
data_pkl = torch_pickle(state)
zbuf = io.BytesIO()
with zipfile.ZipFile(zbuf, "w", zipfile.ZIP_STORED) as z:
    z.writestr("archive/data.pkl", data_pkl)
    z.writestr("archive/byteorder", "little")
    z.writestr("archive/data/0", floats(*range(6)))
    z.writestr("archive/data/1", floats(1, 2, 3, 4))
    z.writestr("archive/data/2", struct.pack("<2q", 7, 8))
    z.writestr("archive/version", "3\n")
put("torch-zip", "tiny", zbuf.getvalue())
put("pickle", "tiny", data_pkl)
for f in ["torch/noncontiguous.bin", "torch/legacy.bin"]:
    put("torch-zip", f.replace("/", "-"), (FIX / f).read_bytes())
with zipfile.ZipFile(FIX / "torch/noncontiguous.bin") as z:
    put("pickle", "noncontiguous", z.read([n for n in z.namelist() if n.endswith("/data.pkl")][0]))
with zipfile.ZipFile(FIX / "torch/t5-bin/pytorch_model.bin") as z:
    put("pickle", "t5-bin", z.read([n for n in z.namelist() if n.endswith("/data.pkl")][0]))

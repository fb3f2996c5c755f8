#!/usr/bin/python3
"""Writes one tiny T5 v1.1-style model both as PyTorch checkpoints (torch.save) and as safetensors.

The C# reader of torch.save's zip format (src/SoftPrompt/Checkpoints/TorchZipFile.cs) is tested by loading these
and requiring the same logits and loss, bit for bit, as the safetensors twin. The model is t5_reference.py's
(random weights, Hugging Face names); what makes it a test of the reader is how the state dict is laid out:

* `shared.weight` is bfloat16 and saved under the three names Hugging Face's state_dict() gives it
  (`shared.weight`, `encoder.embed_tokens.weight`, `decoder.embed_tokens.weight`): one storage, three tensors.
* encoder block 0's q, k and v are row slices of one fused [3*inner, d] tensor: one storage, views at storage
  offsets 0, inner*d and 2*inner*d.
* `lm_head.weight` is float16, `decoder.final_layer_norm.weight` float64, everything else float32.
* the dict carries `_metadata` (module versions) as nn.Module.state_dict() does: pickled as a BUILD of the OrderedDict.

Files (under --out):
  t5-bin/          config.json + pytorch_model.bin (the whole state dict)
  t5-sharded/      config.json + pytorch_model-0000{1,2}-of-00002.bin + pytorch_model.bin.index.json
                   (the same tensors in two shards; tied and fused tensors stay within one shard, as HF's do)
  t5-safetensors/  config.json + model.safetensors (the same tensors and dtypes; the three shared names as copies)
  legacy.bin       a state dict saved with _use_new_zipfile_serialization=False (raw pickle): must be refused
  noncontiguous.bin  {"w": a transposed 2x3 view}: must be refused (it cannot be read in place)

The script checks its output with torch.load: values and dtypes round-trip, the shared names share one storage
after loading, the fused slices keep their storage offsets. It writes everything twice and requires identical bytes
(torch.save's zip entries carry no timestamps; the archive folder inside is the file's base name, e.g.
"pytorch_model/data.pkl"), except legacy.bin, whose storage keys are object ids.

Usage: /usr/bin/python3 tools/reference/make_bin_checkpoint.py --out tests/SoftPrompt.Tests/fixtures/torch
"""

import argparse
import json
import os
import sys
import tempfile
from collections import OrderedDict

import torch

sys.dont_write_bytecode = True  # no __pycache__ next to the script
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from safetensors_io import install_fixtures, load_file, print_sizes, save_file, tree_bytes  # noqa: E402
from t5_reference import Config, make_weights  # noqa: E402

torch.set_num_threads(1)

# v1.1 style (gated-gelu, untied head), H*d_kv = 8 != d_model = 16 so a swapped dimension cannot pass.
CONFIG = Config(vocab_size=32, d_model=16, d_kv=4, d_ff=24, num_layers=2, num_heads=2, num_decoder_layers=2,
                num_buckets=8, max_distance=16, feed_forward_proj="gated-gelu", tie_word_embeddings=False)
SEED = 2024
FUSED = "encoder.block.0.layer.0.SelfAttention."
SHARED_NAMES = ["shared.weight", "encoder.embed_tokens.weight", "decoder.embed_tokens.weight"]


def state_dict():
    """The model as an OrderedDict of tensors in Hugging Face's order, with the shared and fused layouts above."""
    w = make_weights(CONFIG, SEED)
    shared = w["shared.weight"].to(torch.bfloat16)
    fused = torch.cat([w[FUSED + n + ".weight"] for n in "qkv"])  # [3*inner, d]
    inner = CONFIG.inner
    sd = OrderedDict()
    for name, tensor in w.items():
        if name == "shared.weight":
            sd["shared.weight"] = shared
            sd["encoder.embed_tokens.weight"] = shared
            continue
        if name.startswith("decoder.") and "decoder.embed_tokens.weight" not in sd:
            sd["decoder.embed_tokens.weight"] = shared
        if name.startswith(FUSED) and name[len(FUSED)] in "qkv" and name.endswith(".weight") and len(name) == len(FUSED) + 8:
            i = "qkv".index(name[len(FUSED)])
            sd[name] = fused[i * inner:(i + 1) * inner]
        elif name == "lm_head.weight":
            sd[name] = tensor.to(torch.float16)
        elif name == "decoder.final_layer_norm.weight":
            sd[name] = tensor.to(torch.float64)
        else:
            sd[name] = tensor
    # nn.Module.state_dict() attaches per-module versions as an attribute, which torch.save pickles as BUILD state.
    sd._metadata = OrderedDict((prefix, {"version": 1}) for prefix in ["", "shared", "encoder", "decoder", "lm_head"])
    return sd


def write_config(dir_):
    os.makedirs(dir_, exist_ok=True)
    with open(os.path.join(dir_, "config.json"), "w") as f:
        json.dump(CONFIG.to_hf_json(), f, indent=2, sort_keys=True)
        f.write("\n")


def generate(out):
    sd = state_dict()
    write_config(os.path.join(out, "t5-bin"))
    torch.save(sd, os.path.join(out, "t5-bin", "pytorch_model.bin"))

    sharded = os.path.join(out, "t5-sharded")
    write_config(sharded)
    names = list(sd)
    half = len(names) // 2  # the shared names and the fused slices come first, so each group stays in shard 1
    weight_map = {}
    for index, part in enumerate([names[:half], names[half:]], start=1):
        shard = f"pytorch_model-{index:05d}-of-00002.bin"
        torch.save(OrderedDict((n, sd[n]) for n in part), os.path.join(sharded, shard))
        weight_map.update({n: shard for n in part})
    total = sum(t.numel() * t.element_size() for n, t in sd.items() if n not in SHARED_NAMES[1:])
    with open(os.path.join(sharded, "pytorch_model.bin.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2, sort_keys=True)
        f.write("\n")

    write_config(os.path.join(out, "t5-safetensors"))
    save_file({n: t.clone() for n, t in sd.items()}, os.path.join(out, "t5-safetensors", "model.safetensors"), {"format": "pt"})

    example = torch.arange(6, dtype=torch.float32).reshape(2, 3)
    torch.save({"w": example}, os.path.join(out, "legacy.bin"), _use_new_zipfile_serialization=False)
    torch.save({"w": example.t()}, os.path.join(out, "noncontiguous.bin"))
    return sd


def check(out, sd):
    for path in [os.path.join(out, "t5-bin", "pytorch_model.bin")]:
        loaded = torch.load(path)
        assert list(loaded) == list(sd) and loaded._metadata == sd._metadata
        for name, tensor in sd.items():
            assert loaded[name].dtype == tensor.dtype and torch.equal(loaded[name], tensor), name
        pointers = {loaded[n].storage().data_ptr() for n in SHARED_NAMES}
        assert len(pointers) == 1, "the three embedding names must share one storage"
        offsets = [loaded[FUSED + n + ".weight"].storage_offset() for n in "qkv"]
        assert offsets == [0, CONFIG.inner * CONFIG.d_model, 2 * CONFIG.inner * CONFIG.d_model], offsets
    merged = {}
    with open(os.path.join(out, "t5-sharded", "pytorch_model.bin.index.json")) as f:
        for shard in sorted(set(json.load(f)["weight_map"].values())):
            merged.update(torch.load(os.path.join(out, "t5-sharded", shard)))
    assert list(merged) == list(sd) and all(torch.equal(merged[n], sd[n]) for n in sd)
    twin, _ = load_file(os.path.join(out, "t5-safetensors", "model.safetensors"))
    assert twin.keys() == sd.keys()
    for name, tensor in sd.items():
        assert twin[name].dtype == tensor.dtype and torch.equal(twin[name], tensor), name
    dtypes = sorted({str(t.dtype) for t in sd.values()})
    print(f"checked: {len(sd)} tensors ({', '.join(dtypes)}); shared storage for {', '.join(SHARED_NAMES)}; "
          f"fused q/k/v at storage offsets {offsets}")


OWNED = ["t5-bin", "t5-sharded", "t5-safetensors", "legacy.bin", "noncontiguous.bin"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True, help="fixture folder, e.g. tests/SoftPrompt.Tests/fixtures/torch")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        first, second = os.path.join(tmp, "a"), os.path.join(tmp, "b")
        sd = generate(first)
        check(first, sd)
        generate(second)
        a, b = tree_bytes(first), tree_bytes(second)
        # The legacy format keys storages by id(), so only it differs between runs.
        assert a.keys() == b.keys() and all(a[k] == b[k] for k in a if k != "legacy.bin"), "two generations differ: not deterministic"
        print("deterministic: two generations are byte-identical (but legacy.bin, whose storage keys are object ids)")
        total = sum(map(len, a.values()))
        assert total < 300_000, f"fixtures are {total} bytes; keep them small"
        os.makedirs(args.out, exist_ok=True)
        install_fixtures(first, args.out, OWNED)
    print_sizes(a)


if __name__ == "__main__":
    main()

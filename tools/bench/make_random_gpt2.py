"""A gpt2-small-shaped checkpoint with random weights, a prompt for it and pre-tokenized rows, for measuring `predict`
(peak memory: tools/bench/predict_memory.sh). No tokenizer: the rows are token ids.

Usage: /usr/bin/python3 tools/bench/make_random_gpt2.py OUT_DIR [--rows 32] [--input-length 128] [--prompt-length 20]
Writes OUT_DIR/model/{config.json,model.safetensors}, OUT_DIR/prompt.safetensors, OUT_DIR/rows.jsonl (task "t").
"""
import argparse
import json
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "reference"))
from safetensors_io import save_file  # noqa: E402

LAYERS, D, HEADS, VOCAB, POSITIONS = 12, 768, 12, 50257, 1024


def main():
    p = argparse.ArgumentParser()
    p.add_argument("out")
    p.add_argument("--rows", type=int, default=32)
    p.add_argument("--input-length", type=int, default=128)
    p.add_argument("--prompt-length", type=int, default=20)
    a = p.parse_args()
    gen = torch.Generator().manual_seed(0)

    def randn(*shape):
        return torch.randn(*shape, generator=gen) * 0.02

    w = {"wte.weight": randn(VOCAB, D), "wpe.weight": randn(POSITIONS, D), "ln_f.weight": torch.ones(D), "ln_f.bias": torch.zeros(D)}
    for i in range(LAYERS):
        h = f"h.{i}."
        w.update({
            h + "ln_1.weight": torch.ones(D), h + "ln_1.bias": torch.zeros(D),
            h + "attn.c_attn.weight": randn(D, 3 * D), h + "attn.c_attn.bias": torch.zeros(3 * D),
            h + "attn.c_proj.weight": randn(D, D), h + "attn.c_proj.bias": torch.zeros(D),
            h + "ln_2.weight": torch.ones(D), h + "ln_2.bias": torch.zeros(D),
            h + "mlp.c_fc.weight": randn(D, 4 * D), h + "mlp.c_fc.bias": torch.zeros(4 * D),
            h + "mlp.c_proj.weight": randn(4 * D, D), h + "mlp.c_proj.bias": torch.zeros(D),
        })
    os.makedirs(os.path.join(a.out, "model"), exist_ok=True)
    save_file(w, os.path.join(a.out, "model", "model.safetensors"), {"format": "pt"})
    config = {"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"], "vocab_size": VOCAB, "n_positions": POSITIONS, "n_ctx": POSITIONS,
              "n_embd": D, "n_layer": LAYERS, "n_head": HEADS, "n_inner": None, "activation_function": "gelu_new", "layer_norm_epsilon": 1e-5,
              "bos_token_id": 50256, "eos_token_id": 50256}
    with open(os.path.join(a.out, "model", "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    save_file({"prompt_embeddings": randn(a.prompt_length, D) * 25}, os.path.join(a.out, "prompt.safetensors"))
    with open(os.path.join(a.out, "rows.jsonl"), "w") as f:
        for _ in range(a.rows):
            ids = torch.randint(0, VOCAB - 1, (a.input_length,), generator=gen).tolist()
            f.write(json.dumps({"task": "t", "input_ids": ids}) + "\n")


if __name__ == "__main__":
    main()

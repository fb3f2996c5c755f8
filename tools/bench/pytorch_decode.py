#!/usr/bin/python3
"""Greedy generation in plain PyTorch, the counterpart of `softprompt bench --decode`: a GPT-2-shaped model with random
weights, one soft prompt of P vectors in front of each row's seq-len random tokens, new-tokens tokens generated per row.
With a KV cache (as Hugging Face's generate does: keys and values concatenated step by step) or without (each step
re-runs the whole sequences). Prints one JSON line with the same fields as `softprompt bench --decode --json`.

Usage: /usr/bin/python3 tools/bench/pytorch_decode.py --shape gpt2-small --batch-size 1 --seq-len 128 --prompt-length 20 \
           --new-tokens 128 [--no-cache] [--steps 1] [--threads N]
"""

import argparse
import json
import math
import resource
import time

import torch
import torch.nn.functional as F

SHAPES = {  # layers, embedding, heads, vocab, positions (Hugging Face's GPT-2 configs)
    "gpt2-small": (12, 768, 12, 50257, 1024),
    "gpt2-medium": (24, 1024, 16, 50257, 1024),
}


class Gpt2:
    def __init__(self, layers, d, heads, vocab, positions, seed=3):
        g = torch.Generator().manual_seed(seed)
        n = lambda *shape, std=0.02: torch.randn(*shape, generator=g) * std  # noqa: E731
        self.heads, self.d = heads, d
        self.wte, self.wpe = n(vocab, d), n(positions, d, std=0.01)
        self.blocks = [dict(ln1_w=torch.ones(d), ln1_b=torch.zeros(d), attn_w=n(d, 3 * d), attn_b=torch.zeros(3 * d),
                            proj_w=n(d, d), proj_b=torch.zeros(d), ln2_w=torch.ones(d), ln2_b=torch.zeros(d),
                            fc_w=n(d, 4 * d), fc_b=torch.zeros(4 * d), fcp_w=n(4 * d, d), fcp_b=torch.zeros(d)) for _ in range(layers)]
        self.lnf_w, self.lnf_b = torch.ones(d), torch.zeros(d)

    def forward(self, x, start, cache=None):
        """x [B, T, d] embeddings (positions added here from `start`); cache: per layer [k, v] to extend, or None."""
        B, T, d = x.shape
        h, hs = self.heads, d // self.heads
        x = x + self.wpe[start:start + T]
        for i, b in enumerate(self.blocks):
            a = F.layer_norm(x, (d,), b["ln1_w"], b["ln1_b"], 1e-5)
            q, k, v = torch.addmm(b["attn_b"], a.reshape(-1, d), b["attn_w"]).view(B, T, 3, h, hs).permute(2, 0, 3, 1, 4)
            if cache is not None:
                if cache[i] is not None:
                    k, v = torch.cat([cache[i][0], k], dim=2), torch.cat([cache[i][1], v], dim=2)
                cache[i] = (k, v)
            s = (q @ k.transpose(-1, -2)) / math.sqrt(hs)
            mask = torch.ones(T, k.shape[2], dtype=torch.bool).tril(k.shape[2] - T)
            y = (s.masked_fill(~mask, float("-inf")).softmax(-1) @ v).transpose(1, 2).reshape(-1, d)
            x = x + torch.addmm(b["proj_b"], y, b["proj_w"]).view(B, T, d)
            a = F.layer_norm(x, (d,), b["ln2_w"], b["ln2_b"], 1e-5).reshape(-1, d)
            x = x + torch.addmm(b["fcp_b"], F.gelu(torch.addmm(b["fc_b"], a, b["fc_w"]), approximate="tanh"), b["fcp_w"]).view(B, T, d)
        return F.layer_norm(x[:, -1], (d,), self.lnf_w, self.lnf_b, 1e-5) @ self.wte.T  # next-token logits [B, V]


def generate(model, prompt, ids, new_tokens, use_cache):
    """Seconds of (prefill, steps after it, all), greedy; rows all have the same length, so no padding."""
    t0 = time.perf_counter()
    embed = lambda tokens: model.wte[tokens]  # noqa: E731
    x = torch.cat([prompt.expand(ids.shape[0], -1, -1), embed(ids)], dim=1)
    cache = [None] * len(model.blocks) if use_cache else None
    logits = model.forward(x, 0, cache)
    prefill = time.perf_counter() - t0
    position = x.shape[1]
    for _ in range(new_tokens - 1):
        token = logits.argmax(-1, keepdim=True)
        if use_cache:
            logits = model.forward(embed(token), position, cache)
            position += 1
        else:
            x = torch.cat([x, embed(token)], dim=1)
            logits = model.forward(x, 0, None)
    total = time.perf_counter() - t0
    return prefill, total - prefill, total


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--shape", default="gpt2-small", choices=sorted(SHAPES))
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--seq-len", type=int, default=128)
    p.add_argument("--prompt-length", type=int, default=20)
    p.add_argument("--new-tokens", type=int, default=128)
    p.add_argument("--steps", type=int, default=1, help="generations to average")
    p.add_argument("--no-cache", action="store_true")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: PyTorch's default)")
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    layers, d, heads, vocab, positions = SHAPES[a.shape]
    assert a.prompt_length + a.seq_len + a.new_tokens <= positions, "sequence longer than the model's positions"
    model = Gpt2(layers, d, heads, vocab, positions)
    g = torch.Generator().manual_seed(5)
    prompt = torch.rand(1, a.prompt_length, d, generator=g) - 0.5
    ids = torch.randint(0, vocab, (a.batch_size, a.seq_len), generator=g)
    with torch.no_grad():
        generate(model, prompt, ids, min(a.new_tokens, 2), not a.no_cache)  # warm-up, as ours
        runs = [generate(model, prompt, ids, a.new_tokens, not a.no_cache) for _ in range(a.steps)]
    prefill, decode, total = (sum(r[i] for r in runs) / len(runs) for i in range(3))
    print(json.dumps({
        "implementation": "pytorch " + torch.__version__, "device": "cpu", "kv_cache": not a.no_cache, "shape": a.shape,
        "batch_size": a.batch_size, "seq_len": a.seq_len, "prompt_length": a.prompt_length, "new_tokens": a.new_tokens,
        "repeats": a.steps, "threads": torch.get_num_threads(),
        "tokens_per_second": a.batch_size * a.new_tokens / total, "ms_per_step": 1000 * total / a.new_tokens,
        "prefill_ms": 1000 * prefill, "decode_ms_per_step": 1000 * decode / (a.new_tokens - 1) if not a.no_cache and a.new_tokens > 1 else None,
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    }))


if __name__ == "__main__":
    main()

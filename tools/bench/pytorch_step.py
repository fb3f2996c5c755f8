#!/usr/bin/python3
"""One prompt-tuning step in PyTorch, the counterpart of `softprompt bench`: the same step measured the way a PyTorch +
PEFT user would run it, so our speed can be stated as a ratio against it.

The step: a frozen model (weights with requires_grad=False, random, in Hugging Face's layout and names), P soft-prompt
vectors in front of every row's tokens, mean cross-entropy over the target tokens (logits at target positions only),
the gradient for the prompt alone, an AdamW step on the prompt. Rows are built as `softprompt bench` builds them:
decoder-only rows are [prompt, seq-len tokens] whose last `targets` tokens are the targets; T5 rows feed
prompt + seq-len tokens to the encoder and `targets` tokens to the decoder (teacher forcing, start token 0).

The models are the ones of tools/reference (same weight names, same math), written with the fast PyTorch ops a user
gets from Hugging Face: F.layer_norm, F.linear, scaled_dot_product_attention when the installed torch has it (2.0+;
FlashAttention or memory-efficient backends where PyTorch picks them), a manual masked softmax otherwise.
`--self-check` proves them equal to the reference models in float64 (loss and prompt gradient) on small configs.

Precisions: fp32; tf32 (fp32 with TF32 matmuls, CUDA only); bf16 (weights stored bf16 as `torch_dtype=bfloat16`
loads them, autocast to bf16 so norms, softmax and the loss run in fp32; prompt and AdamW state stay fp32).
`--compile` wraps the loss in torch.compile (torch 2.0+).

Usage:
  /usr/bin/python3 tools/bench/pytorch_step.py --shape gpt2-small --batch-size 16 --seq-len 256 --prompt-length 100 \
      [--targets N] [--precision fp32|tf32|bf16] [--compile] [--device cpu|cuda] [--steps 10] [--warmup 2] [--threads N]
  /usr/bin/python3 tools/bench/pytorch_step.py --config DIR/config.json …   (a real model's shape, random weights)
  /usr/bin/python3 tools/bench/pytorch_step.py --list-shapes   (JSON; needs no torch)
  /usr/bin/python3 tools/bench/pytorch_step.py --self-check
Prints one JSON line: ms_per_step, tokens_per_second (rows × positions per second, as `softprompt bench`), peak memory.
"""

import argparse
import json
import math
import os
import resource
import sys
import time

LLAMA3_SCALING = {"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                  "original_max_position_embeddings": 8192}


def _gpt2(d, layers, heads):
    return {"model_type": "gpt2", "vocab_size": 50257, "n_positions": 1024, "n_embd": d, "n_layer": layers, "n_head": heads,
            "n_inner": 4 * d, "layer_norm_epsilon": 1e-5}


def _llama(d, layers, heads, kv_heads, head_dim, inner, vocab, theta, scaling, tied):
    return {"model_type": "llama", "vocab_size": vocab, "hidden_size": d, "num_hidden_layers": layers, "num_attention_heads": heads,
            "num_key_value_heads": kv_heads, "head_dim": head_dim, "intermediate_size": inner, "max_position_embeddings": 4096,
            "rms_norm_eps": 1e-5, "rope_theta": theta, "rope_scaling": scaling, "tie_word_embeddings": tied}


def _t5(d, heads, ff, layers):
    return {"model_type": "t5", "vocab_size": 32128, "d_model": d, "d_kv": 64, "d_ff": ff, "num_layers": layers,
            "num_decoder_layers": layers, "num_heads": heads, "relative_attention_num_buckets": 32,
            "relative_attention_max_distance": 128, "feed_forward_proj": "gated-gelu", "tie_word_embeddings": False,
            "layer_norm_epsilon": 1e-6}


# The named shapes of `softprompt bench --shape` (Gpt2Shapes, LlamaShapes, T5Shapes); a test checks they agree.
SHAPES = {
    "gpt2-small": _gpt2(768, 12, 12),
    "gpt2-medium": _gpt2(1024, 24, 16),
    "gpt2-large": _gpt2(1280, 36, 20),
    "gpt2-xl": _gpt2(1600, 48, 25),
    "llama3.2-1b": _llama(2048, 16, 32, 8, 64, 8192, 128256, 500000.0, LLAMA3_SCALING, True),
    "llama3.2-3b": _llama(3072, 28, 24, 8, 128, 8192, 128256, 500000.0, LLAMA3_SCALING, True),
    "llama2-7b": _llama(4096, 32, 32, 32, 128, 11008, 32000, 10000.0, None, False),
    "llama3-8b": _llama(4096, 32, 32, 8, 128, 14336, 128256, 500000.0, None, False),
    "t5-small": _t5(512, 6, 1024, 8),
    "t5-base": _t5(768, 12, 2048, 12),
    "t5-large": _t5(1024, 16, 2816, 24),
    "t5-xl": _t5(2048, 32, 5120, 24),
    "t5-xxl": _t5(4096, 64, 10240, 24),
}

DEFAULT_T5_TARGETS = 32  # as `softprompt bench`

if __name__ == "__main__" and "--list-shapes" in sys.argv:  # before importing torch: the shape test needs no torch
    print(json.dumps(SHAPES))
    sys.exit(0)

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "reference"))
import gpt2_reference as gpt2_ref  # noqa: E402
import llama_reference as llama_ref  # noqa: E402
import t5_reference as t5_ref  # noqa: E402

HAS_SDPA = hasattr(F, "scaled_dot_product_attention")
SDPA_GQA = HAS_SDPA and "enable_gqa" in (F.scaled_dot_product_attention.__doc__ or "")


# ----------------------------------------------------------------------------------------------------------
# Shared pieces


def attend(q, k, v, scale, causal, bias=None):
    """q [B,H,Tq,hd], k/v [B,Hkv,Tk,hd] (Hkv divides H) -> [B,Tq,H*hd]. bias: additive float [H or 1,Tq,Tk] or None."""
    B, H, Tq, hd = q.shape
    if k.shape[1] != H and not SDPA_GQA:  # Hugging Face's repeat_kv
        rep = H // k.shape[1]
        k, v = (t[:, :, None].expand(-1, -1, rep, -1, -1).reshape(B, H, t.shape[2], hd) for t in (k, v))
    if HAS_SDPA:
        mask = None
        if bias is not None:
            mask = bias.to(q.dtype)
            if causal:
                mask = mask.masked_fill(~torch.ones(Tq, k.shape[2], dtype=torch.bool, device=q.device).tril(), float("-inf"))
        extra = {"enable_gqa": True} if k.shape[1] != H else {}
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal and bias is None, scale=scale, **extra)
    else:
        s = torch.matmul(q, k.transpose(-1, -2)) * scale
        if bias is not None:
            s = s + bias
        if causal:
            s = s.masked_fill(~torch.ones(Tq, k.shape[2], dtype=torch.bool, device=q.device).tril(), float("-inf"))
        y = torch.matmul(torch.softmax(s, dim=-1, dtype=torch.float32 if s.dtype != torch.float64 else s.dtype).to(v.dtype), v)
    return y.transpose(1, 2).reshape(B, Tq, H * hd)


def heads(x, n, hd):
    B, T, _ = x.shape
    return x.view(B, T, n, hd).transpose(1, 2)


def at_least_fp32(t):
    return t.float() if t.dtype in (torch.bfloat16, torch.float16) else t


def rms_norm(x, weight, eps):
    """Hugging Face's LlamaRMSNorm / T5LayerNorm: statistics in fp32, the result in the input's dtype."""
    xf = at_least_fp32(x)
    return weight * (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)).to(x.dtype)


def mean_cross_entropy(hidden, head, labels):
    """hidden [N,d] at target positions, head [V,d] -> mean cross-entropy in fp32 (logits at targets only)."""
    return F.cross_entropy(at_least_fp32(F.linear(hidden, head)), labels)


# ----------------------------------------------------------------------------------------------------------
# The three families: reference config, weight shapes (Hugging Face names), loss of one uniform batch


class Gpt2:
    def __init__(self, c):
        self.cfg = gpt2_ref.Config(c["vocab_size"], c["n_positions"], c["n_embd"], c["n_layer"], c["n_head"], c.get("n_inner"),
                                   c.get("layer_norm_epsilon", 1e-5), c.get("scale_attn_weights", True),
                                   c.get("scale_attn_by_inverse_layer_idx", False), c.get("tie_word_embeddings", True))

    def weight_shapes(self):
        c = self.cfg
        d, inner = c.n_embd, c.inner
        s = {"wte.weight": (c.vocab_size, d), "wpe.weight": (c.n_positions, d), "ln_f.weight": (d,), "ln_f.bias": (d,)}
        for i in range(c.n_layer):
            p = f"h.{i}."
            s.update({p + "ln_1.weight": (d,), p + "ln_1.bias": (d,), p + "attn.c_attn.weight": (d, 3 * d), p + "attn.c_attn.bias": (3 * d,),
                      p + "attn.c_proj.weight": (d, d), p + "attn.c_proj.bias": (d,), p + "ln_2.weight": (d,), p + "ln_2.bias": (d,),
                      p + "mlp.c_fc.weight": (d, inner), p + "mlp.c_fc.bias": (inner,), p + "mlp.c_proj.weight": (inner, d),
                      p + "mlp.c_proj.bias": (d,)})
        if not c.tie_word_embeddings:
            s["lm_head.weight"] = (c.vocab_size, d)
        return s

    def loss(self, w, prompt, tokens, targets):
        """prompt [P,d]; tokens [B,S] whose last `targets` columns are the targets."""
        c = self.cfg
        B, S = tokens.shape
        P, d = prompt.shape
        wte = w["wte.weight"]
        x = torch.cat([prompt.to(wte.dtype).expand(B, P, d), wte[tokens]], dim=1) + w["wpe.weight"][: P + S]
        for i in range(c.n_layer):
            p = f"h.{i}."
            a = F.layer_norm(x, (d,), w[p + "ln_1.weight"], w[p + "ln_1.bias"], c.eps)
            q, k, v = F.linear(a, w[p + "attn.c_attn.weight"].t(), w[p + "attn.c_attn.bias"]).split(d, dim=-1)
            hd = c.head_size
            y = attend(heads(q, c.n_head, hd), heads(k, c.n_head, hd), heads(v, c.n_head, hd),
                       1.0 / math.prod(c.attention_divisors(i)), causal=True)
            x = x + F.linear(y, w[p + "attn.c_proj.weight"].t(), w[p + "attn.c_proj.bias"])
            m = F.layer_norm(x, (d,), w[p + "ln_2.weight"], w[p + "ln_2.bias"], c.eps)
            h = F.gelu(F.linear(m, w[p + "mlp.c_fc.weight"].t(), w[p + "mlp.c_fc.bias"]), approximate="tanh")
            x = x + F.linear(h, w[p + "mlp.c_proj.weight"].t(), w[p + "mlp.c_proj.bias"])
        first = P + S - targets - 1  # the hidden state before each target predicts it
        hidden = F.layer_norm(x[:, first : P + S - 1], (d,), w["ln_f.weight"], w["ln_f.bias"], c.eps)
        head = wte if c.tie_word_embeddings else w["lm_head.weight"]
        return mean_cross_entropy(hidden.reshape(-1, d), head, tokens[:, S - targets :].reshape(-1))

    def reference_loss(self, w64, prompt64, tokens, targets):
        B, S = tokens.shape
        rows = [(0, tokens[b, : S - targets].tolist(), tokens[b, S - targets :].tolist()) for b in range(B)]
        return reference_run(gpt2_ref, w64, self.cfg, prompt64, gpt2_ref.Batch(rows, prompt64.shape[0]))


class Llama:
    def __init__(self, c):
        self.cfg = llama_ref.Config(c["vocab_size"], c["hidden_size"], c["intermediate_size"], c["num_hidden_layers"],
                                    c["num_attention_heads"], c.get("num_key_value_heads", c["num_attention_heads"]),
                                    c["max_position_embeddings"], c.get("rms_norm_eps", 1e-6), c.get("rope_theta", 10000.0),
                                    c.get("rope_scaling"), c.get("tie_word_embeddings", False), c.get("head_dim"))
        self.rope = None

    def weight_shapes(self):
        c = self.cfg
        d, H, Hkv, hd, inner = c.hidden_size, c.num_attention_heads, c.num_key_value_heads, c.head_dim, c.intermediate_size
        s = {"model.embed_tokens.weight": (c.vocab_size, d), "model.norm.weight": (d,)}
        for i in range(c.num_hidden_layers):
            p = f"model.layers.{i}."
            s.update({p + "input_layernorm.weight": (d,), p + "post_attention_layernorm.weight": (d,),
                      p + "self_attn.q_proj.weight": (H * hd, d), p + "self_attn.k_proj.weight": (Hkv * hd, d),
                      p + "self_attn.v_proj.weight": (Hkv * hd, d), p + "self_attn.o_proj.weight": (d, H * hd),
                      p + "mlp.gate_proj.weight": (inner, d), p + "mlp.up_proj.weight": (inner, d), p + "mlp.down_proj.weight": (d, inner)})
        if not c.tie_word_embeddings:
            s["lm_head.weight"] = (c.vocab_size, d)
        return s

    def rope_tables(self, T, dtype, device):
        """cos, sin [T, hd] computed once per shape in fp32 (as Hugging Face's rotary embedding), then in the activations' dtype."""
        if self.rope is None or self.rope[0].shape[0] != T or self.rope[0].dtype != dtype:
            inv_freq = llama_ref.rope_inv_freq(self.cfg, torch.float32 if dtype != torch.float64 else dtype).to(device)
            freqs = torch.arange(T, device=device, dtype=inv_freq.dtype)[:, None] * inv_freq
            emb = torch.cat([freqs, freqs], dim=-1)
            self.rope = (emb.cos().to(dtype), emb.sin().to(dtype))
        return self.rope

    def loss(self, w, prompt, tokens, targets):
        c = self.cfg
        B, S = tokens.shape
        P, d = prompt.shape
        H, Hkv, hd, eps = c.num_attention_heads, c.num_key_value_heads, c.head_dim, c.rms_norm_eps
        embed = w["model.embed_tokens.weight"]
        x = torch.cat([prompt.to(embed.dtype).expand(B, P, d), embed[tokens]], dim=1)
        cos, sin = self.rope_tables(P + S, x.dtype, x.device)

        def rotate(t):
            half = t.shape[-1] // 2
            return t * cos + torch.cat([-t[..., half:], t[..., :half]], dim=-1) * sin

        for i in range(c.num_hidden_layers):
            p = f"model.layers.{i}."
            a = rms_norm(x, w[p + "input_layernorm.weight"], eps)
            q = rotate(heads(F.linear(a, w[p + "self_attn.q_proj.weight"]), H, hd))
            k = rotate(heads(F.linear(a, w[p + "self_attn.k_proj.weight"]), Hkv, hd))
            v = heads(F.linear(a, w[p + "self_attn.v_proj.weight"]), Hkv, hd)
            x = x + F.linear(attend(q, k, v, 1.0 / math.sqrt(hd), causal=True), w[p + "self_attn.o_proj.weight"])
            m = rms_norm(x, w[p + "post_attention_layernorm.weight"], eps)
            h = F.silu(F.linear(m, w[p + "mlp.gate_proj.weight"])) * F.linear(m, w[p + "mlp.up_proj.weight"])
            x = x + F.linear(h, w[p + "mlp.down_proj.weight"])
        first = P + S - targets - 1
        hidden = rms_norm(x[:, first : P + S - 1], w["model.norm.weight"], eps)
        head = embed if c.tie_word_embeddings else w["lm_head.weight"]
        return mean_cross_entropy(hidden.reshape(-1, d), head, tokens[:, S - targets :].reshape(-1))

    def reference_loss(self, w64, prompt64, tokens, targets):
        B, S = tokens.shape
        rows = [(0, tokens[b, : S - targets].tolist(), tokens[b, S - targets :].tolist()) for b in range(B)]
        return reference_run(llama_ref, w64, self.cfg, prompt64, llama_ref.Batch(rows, prompt64.shape[0]))


class T5:
    def __init__(self, c):
        self.cfg = t5_ref.Config(c["vocab_size"], c["d_model"], c["d_kv"], c["d_ff"], c["num_layers"], c["num_heads"],
                                 c.get("num_decoder_layers"), c.get("relative_attention_num_buckets", 32),
                                 c.get("relative_attention_max_distance", 128), c.get("feed_forward_proj", "relu"),
                                 c.get("tie_word_embeddings", True), c.get("layer_norm_epsilon", 1e-6))
        self.buckets = {}

    def weight_shapes(self):
        c = self.cfg
        d, inner, ff = c.d_model, c.inner, c.d_ff
        s = {"shared.weight": (c.vocab_size, d)}

        def attention(prefix, with_bias):
            s.update({prefix + "q.weight": (inner, d), prefix + "k.weight": (inner, d), prefix + "v.weight": (inner, d), prefix + "o.weight": (d, inner)})
            if with_bias:
                s[prefix + "relative_attention_bias.weight"] = (c.num_buckets, c.num_heads)

        for stack, layers in (("encoder", c.num_layers), ("decoder", c.decoder_layers)):
            for i in range(layers):
                p = f"{stack}.block.{i}.layer."
                attention(p + "0.SelfAttention.", i == 0)
                s[p + "0.layer_norm.weight"] = (d,)
                if stack == "decoder":
                    attention(p + "1.EncDecAttention.", False)
                    s[p + "1.layer_norm.weight"] = (d,)
                f = 2 if stack == "decoder" else 1
                for name in t5_ref.ffn_names(c):
                    s[p + f"{f}.DenseReluDense.{name}.weight"] = (d, ff) if name == "wo" else (ff, d)
                s[p + f"{f}.layer_norm.weight"] = (d,)
            s[f"{stack}.final_layer_norm.weight"] = (d,)
        if not c.tie:
            s["lm_head.weight"] = (c.vocab_size, d)
        return s

    def bias(self, table, q_len, k_len, bidirectional):
        """[H, q_len, k_len] from the relative-position table; the bucket indices are computed once per shape."""
        key = (q_len, k_len, bidirectional)
        if key not in self.buckets:
            rel = torch.arange(k_len)[None, :] - torch.arange(q_len)[:, None]
            self.buckets[key] = t5_ref.relative_position_bucket(rel, bidirectional, self.cfg.num_buckets, self.cfg.max_distance).to(table.device)
        return table[self.buckets[key]].permute(2, 0, 1)

    def attention(self, w, prefix, xq, xkv, bias, causal):
        c = self.cfg
        q, k, v = (heads(F.linear(x, w[prefix + n + ".weight"]), c.num_heads, c.d_kv) for x, n in ((xq, "q"), (xkv, "k"), (xkv, "v")))
        return F.linear(attend(q, k, v, 1.0, causal, bias), w[prefix + "o.weight"])  # no 1/sqrt(d_kv): T5 folds it into q

    def feed_forward(self, w, prefix, x):
        if self.cfg.gated:
            h = F.gelu(F.linear(x, w[prefix + "wi_0.weight"]), approximate="tanh") * F.linear(x, w[prefix + "wi_1.weight"])
        else:
            h = F.relu(F.linear(x, w[prefix + "wi.weight"]))
        return F.linear(h, w[prefix + "wo.weight"])

    def loss(self, w, prompt, tokens, targets):
        """prompt [P,d]; tokens [B,S] go to the encoder; targets [B,Tdec] (a tensor here) to the decoder."""
        c = self.cfg
        B, S = tokens.shape
        P, d = prompt.shape
        shared = w["shared.weight"]
        x = torch.cat([prompt.to(shared.dtype).expand(B, P, d), shared[tokens]], dim=1)
        T = P + S
        bias = self.bias(w["encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"], T, T, True)
        for i in range(c.num_layers):
            p = f"encoder.block.{i}.layer."
            a = rms_norm(x, w[p + "0.layer_norm.weight"], c.eps)
            x = x + self.attention(w, p + "0.SelfAttention.", a, a, bias, False)
            x = x + self.feed_forward(w, p + "1.DenseReluDense.", rms_norm(x, w[p + "1.layer_norm.weight"], c.eps))
        enc = rms_norm(x, w["encoder.final_layer_norm.weight"], c.eps)
        start = torch.zeros(B, 1, dtype=targets.dtype, device=targets.device)  # decoder_start_token_id = pad = 0
        y = shared[torch.cat([start, targets[:, :-1]], dim=1)]
        Td = targets.shape[1]
        bias = self.bias(w["decoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"], Td, Td, False)
        for i in range(c.decoder_layers):
            p = f"decoder.block.{i}.layer."
            a = rms_norm(y, w[p + "0.layer_norm.weight"], c.eps)
            y = y + self.attention(w, p + "0.SelfAttention.", a, a, bias, True)
            y = y + self.attention(w, p + "1.EncDecAttention.", rms_norm(y, w[p + "1.layer_norm.weight"], c.eps), enc, None, False)
            y = y + self.feed_forward(w, p + "2.DenseReluDense.", rms_norm(y, w[p + "2.layer_norm.weight"], c.eps))
        hidden = rms_norm(y, w["decoder.final_layer_norm.weight"], c.eps)
        if c.tie:
            hidden = hidden * c.d_model ** -0.5
        head = shared if c.tie else w["lm_head.weight"]
        return mean_cross_entropy(hidden.reshape(-1, d), head, targets.reshape(-1))

    def reference_loss(self, w64, prompt64, tokens, targets):
        rows = [(0, tokens[b].tolist(), targets[b].tolist()) for b in range(tokens.shape[0])]
        return reference_run(t5_ref, w64, self.cfg, prompt64, t5_ref.Batch(rows, prompt64.shape[0]))


FAMILIES = {"gpt2": Gpt2, "llama": Llama, "t5": T5}


def reference_run(module, w64, cfg, prompt64, batch):
    r = module.run(w64, cfg, prompt64[None], batch, torch.float64)
    return r["loss"], r["prompt_grad"][0]


# ----------------------------------------------------------------------------------------------------------
# The benchmark


def random_weights(model, dtype, device, seed):
    """Every frozen weight ~ N(0, 0.02²) (norm weights 1), generated on the device in its storage dtype."""
    g = torch.Generator(device=device).manual_seed(seed)
    w = {}
    for name, shape in model.weight_shapes().items():
        if len(shape) == 1 and "norm" in name or name.endswith(("ln_1.weight", "ln_2.weight", "ln_f.weight")):
            w[name] = torch.ones(shape, dtype=dtype, device=device)
        else:
            w[name] = (torch.randn(shape, generator=g, device=device, dtype=torch.float32) * 0.02).to(dtype)
    return w


def peak_memory(device):
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device)
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def bench(args):
    config = SHAPES[args.shape] if args.shape else json.load(open(args.config))
    family = config["model_type"]
    if family not in FAMILIES:
        sys.exit(f"pytorch_step: model_type '{family}' is not one of {', '.join(FAMILIES)}")
    model = FAMILIES[family](config)
    device = torch.device(args.device)
    if args.precision == "tf32" and device.type != "cuda":
        sys.exit("pytorch_step: --precision tf32 needs --device cuda")
    torch.backends.cuda.matmul.allow_tf32 = args.precision == "tf32"
    torch.backends.cudnn.allow_tf32 = args.precision == "tf32"
    if args.compile and not hasattr(torch, "compile"):
        sys.exit(f"pytorch_step: torch {torch.__version__} has no torch.compile")
    storage = torch.bfloat16 if args.precision == "bf16" else torch.float32
    w = random_weights(model, storage, device, seed=3)
    for t in w.values():
        t.requires_grad_(False)
    encoder_decoder = family == "t5"
    targets = args.targets if args.targets is not None else (DEFAULT_T5_TARGETS if encoder_decoder else args.seq_len - 1)
    if targets <= 0 or (not encoder_decoder and targets > args.seq_len):
        sys.exit(f"pytorch_step: --targets {targets} must be in 1..{'∞' if encoder_decoder else args.seq_len}")
    g = torch.Generator(device="cpu").manual_seed(3)
    vocab = model.cfg.vocab_size
    tokens = torch.randint(vocab, (args.batch_size, args.seq_len), generator=g).to(device)
    decoder_targets = torch.randint(vocab, (args.batch_size, targets), generator=g).to(device) if encoder_decoder else targets
    d = config.get("n_embd") or config.get("hidden_size") or config.get("d_model")
    prompt = (torch.rand(args.prompt_length, d, generator=g) - 0.5).to(device).requires_grad_(True)
    optimizer = torch.optim.AdamW([prompt], lr=1e-3, weight_decay=0.0)

    def loss_of(prompt_):
        return model.loss(w, prompt_, tokens, decoder_targets)

    loss_fn = torch.compile(loss_of) if args.compile else loss_of
    autocast = (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if args.precision == "bf16" else None

    def step():
        optimizer.zero_grad(set_to_none=True)
        if autocast:
            with autocast():
                loss = loss_fn(prompt)
        else:
            loss = loss_fn(prompt)
        loss.backward()
        optimizer.step()
        return loss

    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for _ in range(args.warmup):
        step()
    sync()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    t0 = time.perf_counter()
    for _ in range(args.steps):
        loss = step()
    sync()
    seconds = time.perf_counter() - t0
    positions = args.prompt_length + args.seq_len + (targets if encoder_decoder else 0)
    print(json.dumps({
        "implementation": "pytorch", "torch": torch.__version__, "family": family, "shape": args.shape or args.config,
        "device": device.type, "device_description": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "precision": args.precision, "compiled": args.compile, "attention": "sdpa" if HAS_SDPA else "manual",
        "threads": torch.get_num_threads(), "batch_size": args.batch_size, "seq_len": args.seq_len,
        "prompt_length": args.prompt_length, "targets_per_row": targets, "steps": args.steps,
        "ms_per_step": 1000 * seconds / args.steps, "tokens_per_second": args.batch_size * positions * args.steps / seconds,
        "peak_memory_bytes": peak_memory(device), "loss": float(loss),
    }))


# ----------------------------------------------------------------------------------------------------------
# Self-check: the fast models equal the reference models (float64 loss and prompt gradient), and declare the same
# weights as the references generate.

SELF_CHECK_CONFIGS = {
    "gpt2": dict(SHAPES["gpt2-small"], vocab_size=97, n_positions=40, n_embd=24, n_layer=2, n_head=3, n_inner=40),
    "gpt2-untied-layer-scaled": dict(SHAPES["gpt2-small"], vocab_size=97, n_positions=40, n_embd=24, n_layer=2, n_head=3, n_inner=40,
                                     scale_attn_by_inverse_layer_idx=True, tie_word_embeddings=False),
    "llama-gqa-llama3-rope": dict(SHAPES["llama3.2-1b"], vocab_size=101, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                  num_key_value_heads=2, head_dim=8, intermediate_size=48, max_position_embeddings=64),
    "llama-untied": dict(SHAPES["llama2-7b"], vocab_size=101, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=4, head_dim=8, intermediate_size=48, max_position_embeddings=64),
    "t5-v1.1": dict(SHAPES["t5-small"], vocab_size=89, d_model=32, d_kv=8, d_ff=40, num_layers=2, num_decoder_layers=2, num_heads=4),
    "t5-v1.0": dict(SHAPES["t5-small"], vocab_size=89, d_model=32, d_kv=8, d_ff=40, num_layers=2, num_decoder_layers=3, num_heads=4,
                    feed_forward_proj="relu", tie_word_embeddings=True),
}


def self_check():
    results = {}
    for name, config in SELF_CHECK_CONFIGS.items():
        model = FAMILIES[config["model_type"]](config)
        reference = {"gpt2": gpt2_ref, "llama": llama_ref, "t5": t5_ref}[config["model_type"]]
        w32 = reference.make_weights(model.cfg, seed=11)
        declared = {k: tuple(v) for k, v in model.weight_shapes().items()}
        generated = {k: tuple(v.shape) for k, v in w32.items()}
        if declared != generated:
            diff = sorted(set(declared.items()) ^ set(generated.items()))
            raise SystemExit(f"self-check {name}: declared weights differ from the reference's: {diff[:6]}")
        w64 = {k: v.double() for k, v in w32.items()}
        g = torch.Generator().manual_seed(5)
        B, S, P = 3, 9, 4
        d = next(v for k, v in config.items() if k in ("n_embd", "hidden_size", "d_model"))
        tokens = torch.randint(model.cfg.vocab_size, (B, S), generator=g)
        targets = torch.randint(model.cfg.vocab_size, (B, 5), generator=g) if config["model_type"] == "t5" else 4
        prompt = (torch.randn(P, d, generator=g, dtype=torch.float64) * 0.3).requires_grad_(True)
        loss = model.loss(w64, prompt, tokens, targets)
        loss.backward()
        ref_loss, ref_grad = model.reference_loss(w64, prompt.detach(), tokens, targets)
        loss_error = abs(float(loss) - float(ref_loss))
        grad_error = float((prompt.grad - ref_grad).abs().max() / ref_grad.abs().max())
        results[name] = {"loss": float(loss), "loss_error": loss_error, "relative_gradient_error": grad_error}
        if not (loss_error < 1e-10 and grad_error < 1e-9):
            raise SystemExit(f"self-check {name}: loss {float(loss)} vs reference {float(ref_loss)}, gradient error {grad_error:.3g}")
    print(json.dumps({"self_check": "passed", "attention": "sdpa" if HAS_SDPA else "manual", "cases": results}))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--shape", choices=sorted(SHAPES))
    p.add_argument("--config", help="a Hugging Face config.json (its shape, random weights)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--seq-len", type=int, default=256)
    p.add_argument("--prompt-length", type=int, default=100)
    p.add_argument("--targets", type=int)
    p.add_argument("--precision", choices=["fp32", "tf32", "bf16"], default="fp32")
    p.add_argument("--compile", action="store_true")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, help="CPU threads (default: torch's own choice)")
    p.add_argument("--self-check", action="store_true")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    else:
        torch.set_num_threads(os.cpu_count() or 1)  # the reference modules pin 1 thread on import; a user would not
    if args.self_check:
        self_check()
        return
    if (args.shape is None) == (args.config is None):
        p.error("give exactly one of --shape NAME or --config FILE")
    if min(args.batch_size, args.seq_len, args.steps) <= 0 or args.prompt_length < 0 or args.warmup < 0:
        p.error("--batch-size, --seq-len and --steps must be positive, --prompt-length and --warmup not negative")
    bench(args)


if __name__ == "__main__":
    main()

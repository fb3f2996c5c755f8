#!/usr/bin/python3
"""Independent PyTorch reference for T5 prompt tuning; writes the fixtures the C# engines are tested against.

Everything is written by hand in plain PyTorch (no `transformers`, no `peft`, no `safetensors` package):

* T5 in Hugging Face's layout and semantics (T5ForConditionalGeneration, eval mode): shared token embedding
  [V,d]; nn.Linear weights stored [out, in] (y = x @ W^T, no biases anywhere); T5LayerNorm = RMS norm
  x * rsqrt(mean(x^2) + eps) * w (no mean, no bias); pre-norm blocks with residuals; attention WITHOUT the
  1/sqrt(d_kv) scale, H heads of d_kv (inner H*d_kv may differ from d_model); a relative position bias
  table [num_buckets, H] in block 0 of each stack, shared by every layer of that stack, bucketed exactly as
  HF's `_relative_position_bucket(memory - context)` (bidirectional in the encoder, causal in the decoder);
  decoder self-attention causal; cross-attention into the encoder output with no position bias;
  v1.0 FFN relu(x Wi^T) Wo^T, v1.1 (gated-gelu) (gelu_new(x Wi0^T) * (x Wi1^T)) Wo^T; encoder and decoder
  final RMS norms; tied LM head (= shared) with the decoder output scaled by d_model^-0.5 first, or an
  untied lm_head [V,d] without the rescale. mT5 (`MT5ForConditionalGeneration`, model_type "mt5") is the
  v1.1 arithmetic; only its config.json differs (no dense_act_fn / is_gated_act; MT5Config's defaults).
* Prompt tuning as PEFT does it for seq2seq models: the P vectors of prompt `prompt_index[b]` are prepended
  to the ENCODER input embeddings of row b; they take part in the relative positions like tokens (prompt
  vector p at position p, input token i at P+i); the encoder attention mask covers prompt + input tokens
  and masks the right padding. The decoder is teacher-forced on the targets shifted right behind
  decoder_start_token_id (0). Loss = mean cross-entropy over every target token of the batch.

Before writing, the script checks itself: its bucket function against a pure-Python scalar version, autograd
vs central finite differences (float64), float32 vs float64, a loop-per-position unbatched forward of every
row vs the batched one, and a set of plausible bugs ("mutants") that must each move the logits far more than
float32 noise. It then generates the fixtures twice and checks that the two byte streams are identical.

Usage: /usr/bin/python3 tools/reference/t5_reference.py --out tests/SoftPrompt.Tests/fixtures/t5
"""

import argparse
import json
import math
import os
import sys
import tempfile

import torch

sys.dont_write_bytecode = True  # no __pycache__ next to the script
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from safetensors_io import install_fixtures, load_file, print_sizes, save_file, tree_bytes  # noqa: E402

torch.set_num_threads(1)  # determinism and a shared 2-core machine

PAD = -1  # padding of input_ids / target_ids / labels in the case files
PAD_TOKEN = 0  # T5's pad_token_id: what padded token positions embed, and decoder_start_token_id
EOS_TOKEN = 1

# Weight scales: Hugging Face's T5 init (_init_weights with initializer_factor 1) for the matrices, which keeps
# attention scores O(1) without a 1/sqrt(d_kv) scale. The position-bias table is drawn larger than HF's init
# (std d^-0.5) so bucket mistakes move the logits far beyond float32 noise; the mutant check proves it.
SHARED_STD = 1.0
BIAS_TABLE_STD = 1.0
LN_WEIGHT_STD = 0.1  # norm weights ~ 1 + 0.1 N(0,1): a dropped or swapped weight is visible
LM_HEAD_GAIN = 2.0  # untied lm_head ~ N(0, (2/sqrt(d))^2): logits of std ~2


class Config:
    def __init__(self, vocab_size, d_model, d_kv, d_ff, num_layers, num_heads, num_decoder_layers=None,
                 num_buckets=32, max_distance=128, feed_forward_proj="relu", tie_word_embeddings=True,
                 layer_norm_epsilon=1e-6, n_positions=None, model_type="t5"):
        self.vocab_size = vocab_size
        self.d_model = d_model
        self.d_kv = d_kv
        self.d_ff = d_ff
        self.num_layers = num_layers
        self.num_decoder_layers = num_decoder_layers  # None: not written to config.json (HF defaults it to num_layers)
        self.num_heads = num_heads
        self.num_buckets = num_buckets
        self.max_distance = max_distance
        self.feed_forward_proj = feed_forward_proj
        self.tie = tie_word_embeddings
        self.eps = layer_norm_epsilon
        self.n_positions = n_positions
        self.model_type = model_type  # "t5" or "mt5" (then gated-gelu, untied: mT5's only arrangement)
        assert model_type == "t5" or (feed_forward_proj == "gated-gelu" and not tie_word_embeddings)

    @property
    def decoder_layers(self):
        return self.num_decoder_layers if self.num_decoder_layers is not None else self.num_layers

    @property
    def gated(self):
        return self.feed_forward_proj == "gated-gelu"

    @property
    def inner(self):
        return self.num_heads * self.d_kv

    def to_hf_json(self):
        j = {
            "architectures": ["T5ForConditionalGeneration"],
            "d_ff": self.d_ff,
            "d_kv": self.d_kv,
            "d_model": self.d_model,
            "decoder_start_token_id": PAD_TOKEN,
            "dense_act_fn": "gelu_new" if self.gated else "relu",
            "dropout_rate": 0.1,
            "eos_token_id": EOS_TOKEN,
            "feed_forward_proj": self.feed_forward_proj,
            "initializer_factor": 1.0,
            "is_encoder_decoder": True,
            "is_gated_act": self.gated,
            "layer_norm_epsilon": self.eps,
            "model_type": "t5",
            "num_heads": self.num_heads,
            "num_layers": self.num_layers,
            "pad_token_id": PAD_TOKEN,
            "relative_attention_max_distance": self.max_distance,
            "relative_attention_num_buckets": self.num_buckets,
            "tie_word_embeddings": self.tie,
            "torch_dtype": "float32",
            "use_cache": True,
            "vocab_size": self.vocab_size,
        }
        if self.num_decoder_layers is not None:
            j["num_decoder_layers"] = self.num_decoder_layers
        if self.n_positions is not None:
            j["n_positions"] = self.n_positions
        if self.model_type == "mt5":  # as google/mt5-small's config.json: no dense_act_fn / is_gated_act
            del j["dense_act_fn"], j["is_gated_act"]
            j.update({"architectures": ["MT5ForConditionalGeneration"], "model_type": "mt5", "tokenizer_class": "T5Tokenizer"})
        return j


# ----------------------------------------------------------------------------------------------------------
# Weights (HF names), float32


def ffn_names(cfg):
    return ["wi_0", "wi_1", "wo"] if cfg.gated else ["wi", "wo"]


def make_weights(cfg, seed):
    g = torch.Generator().manual_seed(seed)

    def randn(*shape):
        return torch.randn(*shape, generator=g, dtype=torch.float64)

    d, inner, ff, H = cfg.d_model, cfg.inner, cfg.d_ff, cfg.num_heads
    w = {"shared.weight": randn(cfg.vocab_size, d) * SHARED_STD}

    def attention(prefix, with_bias):
        w[prefix + "q.weight"] = randn(inner, d) * (d * cfg.d_kv) ** -0.5
        w[prefix + "k.weight"] = randn(inner, d) * d ** -0.5
        w[prefix + "v.weight"] = randn(inner, d) * d ** -0.5
        w[prefix + "o.weight"] = randn(d, inner) * inner ** -0.5
        if with_bias:
            w[prefix + "relative_attention_bias.weight"] = randn(cfg.num_buckets, H) * BIAS_TABLE_STD

    def ffn(prefix):
        for name in ffn_names(cfg):
            w[prefix + name + ".weight"] = randn(d, ff) * ff ** -0.5 if name == "wo" else randn(ff, d) * d ** -0.5

    for stack, layers in (("encoder", cfg.num_layers), ("decoder", cfg.decoder_layers)):
        for i in range(layers):
            p = f"{stack}.block.{i}.layer."
            attention(p + "0.SelfAttention.", i == 0)
            w[p + "0.layer_norm.weight"] = 1 + LN_WEIGHT_STD * randn(d)
            if stack == "decoder":
                attention(p + "1.EncDecAttention.", False)
                w[p + "1.layer_norm.weight"] = 1 + LN_WEIGHT_STD * randn(d)
            f = 2 if stack == "decoder" else 1
            ffn(p + f"{f}.DenseReluDense.")
            w[p + f"{f}.layer_norm.weight"] = 1 + LN_WEIGHT_STD * randn(d)
        w[f"{stack}.final_layer_norm.weight"] = 1 + LN_WEIGHT_STD * randn(d)
    if not cfg.tie:
        w["lm_head.weight"] = randn(cfg.vocab_size, d) * (LM_HEAD_GAIN / math.sqrt(d))
    return {k: v.to(torch.float32) for k, v in w.items()}


# ----------------------------------------------------------------------------------------------------------
# The model, batched. `bug` names a deliberate mistake (used only by the mutant check); None = correct.


def relative_position_bucket(relative_position, bidirectional, num_buckets, max_distance):
    """HF's T5Attention._relative_position_bucket: relative_position = key position - query position (int64).
    The large-distance branch is computed in float32 exactly as HF does (log of a float32 tensor, divided by a
    Python-float log, times an int, truncated)."""
    buckets = torch.zeros_like(relative_position)
    if bidirectional:
        num_buckets //= 2
        buckets += (relative_position > 0).to(torch.long) * num_buckets
        relative_position = torch.abs(relative_position)
    else:
        relative_position = -torch.min(relative_position, torch.zeros_like(relative_position))
    max_exact = num_buckets // 2
    is_small = relative_position < max_exact
    large = max_exact + (torch.log(relative_position.float() / max_exact) / math.log(max_distance / max_exact)
                         * (num_buckets - max_exact)).to(torch.long)
    large = torch.min(large, torch.full_like(large, num_buckets - 1))
    return buckets + torch.where(is_small, relative_position, large)


def bucket_scalar(rp, bidirectional, num_buckets, max_distance):
    """The same function for one int, in plain Python double precision (a cross-check of the tensor version)."""
    bucket = 0
    if bidirectional:
        num_buckets //= 2
        if rp > 0:
            bucket += num_buckets
        n = abs(rp)
    else:
        n = max(-rp, 0)
    max_exact = num_buckets // 2
    if n < max_exact:
        return bucket + n
    large = max_exact + int(math.log(n / max_exact) / math.log(max_distance / max_exact) * (num_buckets - max_exact))
    return bucket + min(large, num_buckets - 1)


def position_bias(table, q_len, k_len, bidirectional, cfg, bug=None):
    """table [num_buckets, H] -> bias [H, q_len, k_len]; bias[h, i, j] = table[bucket(j - i), h]."""
    context = torch.arange(q_len, dtype=torch.long)[:, None]
    memory = torch.arange(k_len, dtype=torch.long)[None, :]
    rel = memory - context
    if bug == "bias_sign":
        rel = -rel
    buckets = relative_position_bucket(rel, bidirectional, cfg.num_buckets, cfg.max_distance)
    return table[buckets].permute(2, 0, 1)


def rms_norm(x, weight, eps, bug=None):
    if bug == "norm_subtracts_mean":
        x = x - x.mean(dim=-1, keepdim=True)
    variance = (x * x).mean(dim=-1, keepdim=True)
    return weight * (x * torch.rsqrt(variance + eps))


def gelu_new(x, bug=None):
    if bug == "gelu_erf":
        return 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x * x * x)))


def attention(w, prefix, xq, xkv, cfg, bias=None, key_mask=None, causal=False, bug=None):
    """xq [B,Tq,d], xkv [B,Tk,d] -> [B,Tq,d]. bias [H,Tq,Tk] or None; key_mask [B,Tk] bool (True = attend)."""
    B, Tq, _ = xq.shape
    Tk = xkv.shape[1]
    H, dk = cfg.num_heads, cfg.d_kv
    wq = w[prefix + ("k.weight" if bug == "q_uses_k" else "q.weight")]
    q = (xq @ wq.t()).view(B, Tq, H, dk).transpose(1, 2)  # [B,H,Tq,dk]; head h = columns h*dk..
    k = (xkv @ w[prefix + "k.weight"].t()).view(B, Tk, H, dk).transpose(1, 2)
    v = (xkv @ w[prefix + "v.weight"].t()).view(B, Tk, H, dk).transpose(1, 2)
    scores = q @ k.transpose(-1, -2)  # no 1/sqrt(d_kv): T5 folds it into the q init
    if bug == "attn_scale":
        scores = scores / math.sqrt(dk)
    if bias is not None:
        scores = scores + bias[None]
    masked = torch.zeros(B, 1, Tq, Tk, dtype=torch.bool)
    if key_mask is not None:
        masked = masked | ~key_mask[:, None, None, :]
    if causal:
        masked = masked | ~torch.ones(Tq, Tk, dtype=torch.bool).tril()[None, None]
    scores = scores.masked_fill(masked, float("-inf"))
    in_bf16 = scores.dtype == torch.bfloat16  # under bf16 autocast: as Hugging Face, the softmax in float32
    scores = scores.float() if in_bf16 else scores
    scores = scores - scores.max(dim=-1, keepdim=True).values
    e = torch.exp(scores)
    probs = e / e.sum(dim=-1, keepdim=True)
    probs = probs.to(torch.bfloat16) if in_bf16 else probs
    y = (probs @ v).transpose(1, 2).reshape(B, Tq, H * dk)
    return y @ w[prefix + "o.weight"].t()


def feed_forward(w, prefix, x, cfg, bug=None):
    if cfg.gated:
        gate, linear = x @ w[prefix + "wi_0.weight"].t(), x @ w[prefix + "wi_1.weight"].t()
        if bug == "gate_swapped":
            gate, linear = linear, gate
        h = gelu_new(gate, bug) * linear
    else:
        h = x @ w[prefix + "wi.weight"].t()
        h = gelu_new(h) if bug == "gelu_for_relu" else torch.clamp(h, min=0)
    return h @ w[prefix + "wo.weight"].t()


def encoder(w, cfg, x, key_mask, bug=None):
    """x [B,Tenc,d] (prompt + token embeddings) -> encoder output after final_layer_norm [B,Tenc,d]."""
    T = x.shape[1]
    bias = None
    if bug != "no_position_bias":
        bias = position_bias(w["encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"], T, T,
                             bug != "encoder_unidirectional", cfg, bug)
    mask = None if bug == "no_encoder_mask" else key_mask
    for i in range(cfg.num_layers):
        p = f"encoder.block.{i}.layer."
        x = x + self_attention(w, p + "0.SelfAttention.", rms_norm(x, w[p + "0.layer_norm.weight"], cfg.eps, bug), cfg,
                               bias, mask, False, bug)
        x = x + feed_forward(w, p + "1.DenseReluDense.", rms_norm(x, w[p + "1.layer_norm.weight"], cfg.eps, bug), cfg, bug)
    if bug == "no_encoder_final_norm":
        return x
    return rms_norm(x, w["encoder.final_layer_norm.weight"], cfg.eps, bug)


def self_attention(w, prefix, x, cfg, bias, key_mask, causal, bug):
    return attention(w, prefix, x, x, cfg, bias, key_mask, causal, bug)


def decoder(w, cfg, y, enc, enc_mask, bug=None):
    """y [B,Tdec,d] (embeddings of the shifted targets), enc [B,Tenc,d] -> decoder output after final norm."""
    T, Tenc = y.shape[1], enc.shape[1]
    table = w["decoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"]
    bias = None
    if bug != "no_position_bias":
        bias = position_bias(table, T, T, bug == "decoder_bidirectional", cfg, bug)
    cross_bias = position_bias(table, T, Tenc, True, cfg) if bug == "cross_attention_bias" else None
    mask = None if bug == "no_encoder_mask" else enc_mask
    for i in range(cfg.decoder_layers):
        p = f"decoder.block.{i}.layer."
        y = y + self_attention(w, p + "0.SelfAttention.", rms_norm(y, w[p + "0.layer_norm.weight"], cfg.eps, bug), cfg,
                               bias, None, bug != "no_decoder_causal", bug)
        y = y + attention(w, p + "1.EncDecAttention.", rms_norm(y, w[p + "1.layer_norm.weight"], cfg.eps, bug), enc, cfg,
                          cross_bias, mask, False, bug)
        y = y + feed_forward(w, p + "2.DenseReluDense.", rms_norm(y, w[p + "2.layer_norm.weight"], cfg.eps, bug), cfg, bug)
    if bug == "no_decoder_final_norm":
        return y
    return rms_norm(y, w["decoder.final_layer_norm.weight"], cfg.eps, bug)


def lm_head(w, cfg, hidden, bug=None):
    rescale = cfg.tie != (bug == "lm_rescale_flipped")
    if rescale:
        hidden = hidden * cfg.d_model ** -0.5
    return hidden @ (w["shared.weight"] if cfg.tie else w["lm_head.weight"]).t()


# ----------------------------------------------------------------------------------------------------------
# Prompt tuning: batch layout, embedding with the prompt spliced in, loss


class Batch:
    """rows: list of (prompt_index, input_ids, target_ids)."""

    def __init__(self, rows, P):
        self.rows = rows
        self.P = P
        B = len(rows)
        lin = [len(r[1]) for r in rows]
        lt = [len(r[2]) for r in rows]
        for (_, inp, tgt) in rows:
            assert len(tgt) >= 1, "a row needs at least one target token"
            assert P + len(inp) >= 1, "the encoder needs at least one position"
        self.Tenc = P + max(lin)
        self.Tdec = max(lt)
        self.input_ids = torch.full((B, max(max(lin), 1)), PAD, dtype=torch.int64)
        self.target_ids = torch.full((B, self.Tdec), PAD, dtype=torch.int64)
        self.input_lengths = torch.tensor(lin, dtype=torch.int64)
        self.target_lengths = torch.tensor(lt, dtype=torch.int64)
        self.prompt_index = torch.tensor([r[0] for r in rows], dtype=torch.int64)
        self.enc_tokens = torch.full((B, max(lin)), PAD_TOKEN, dtype=torch.int64)  # embedded at positions P+i
        self.encoder_mask = torch.zeros(B, self.Tenc, dtype=torch.int64)
        self.decoder_input_ids = torch.full((B, self.Tdec), PAD_TOKEN, dtype=torch.int64)
        self.labels = torch.full((B, self.Tdec), PAD, dtype=torch.int64)
        for b, (_, inp, tgt) in enumerate(rows):
            if inp:
                self.input_ids[b, : len(inp)] = torch.tensor(inp, dtype=torch.int64)
                self.enc_tokens[b, : len(inp)] = torch.tensor(inp, dtype=torch.int64)
            self.target_ids[b, : len(tgt)] = torch.tensor(tgt, dtype=torch.int64)
            self.labels[b, : len(tgt)] = torch.tensor(tgt, dtype=torch.int64)
            shifted = [PAD_TOKEN] + list(tgt[:-1])  # decoder_start_token_id = 0
            self.decoder_input_ids[b, : len(shifted)] = torch.tensor(shifted, dtype=torch.int64)
            self.encoder_mask[b, : P + len(inp)] = 1
        self.decoder_mask = (self.labels >= 0).to(torch.int64)
        self.target_count = sum(lt)


def encoder_inputs(w, prompts, batch, bug=None):
    """[B,Tenc,d]: prompt vectors then input-token embeddings (padding embeds token 0); the key mask [B,Tenc]."""
    tok = w["shared.weight"][batch.enc_tokens]
    pr = prompts[batch.prompt_index]
    mask = batch.encoder_mask.bool()
    if bug == "prompt_after_input":  # rows are already right-aligned to the same width, so put the prompt last
        x = torch.cat([tok, pr], dim=1)
        lin = batch.input_lengths
        mask = torch.zeros_like(mask)
        for b in range(x.shape[0]):
            n = int(lin[b])
            x[b] = torch.cat([tok[b, :n], pr[b], tok[b, n:]], dim=0)
            mask[b, : n + batch.P] = True
        return x, mask
    return torch.cat([pr, tok], dim=1), mask


def forward(w, cfg, prompts, batch, bug=None):
    x, mask = encoder_inputs(w, prompts, batch, bug)
    enc = encoder(w, cfg, x, mask, bug)
    dec_ids = batch.decoder_input_ids
    if bug == "decoder_start_eos":
        dec_ids = dec_ids.clone()
        dec_ids[:, 0] = EOS_TOKEN
    y = w["shared.weight"][dec_ids]
    hidden = decoder(w, cfg, y, enc, mask, bug)
    return enc, hidden, lm_head(w, cfg, hidden, bug)


def cross_entropy_mean(logits, labels):
    """Mean over positions with labels >= 0 of logsumexp(logits) - logits[label]."""
    sel = labels >= 0
    lg = logits[sel]
    tgt = labels[sel]
    m = lg.max(dim=-1, keepdim=True).values
    lse = m.squeeze(-1) + torch.log(torch.exp(lg - m).sum(dim=-1))
    return (lse - lg.gather(1, tgt[:, None]).squeeze(1)).mean()


def cast(w, dtype):
    return {k: v.to(dtype) for k, v in w.items()}


def run(w32, cfg, prompts32, batch, dtype, bug=None):
    """Forward + backward in `dtype`. Returns a dict of detached results (in `dtype`)."""
    w = cast(w32, dtype)
    prompts = prompts32.to(dtype).clone().requires_grad_(True)
    enc, hidden, logits = forward(w, cfg, prompts, batch, bug)
    loss = cross_entropy_mean(logits, batch.labels)
    loss.backward()
    return {"loss": loss.detach(), "prompt_grad": prompts.grad.detach(), "logits": logits.detach(),
            "encoder_output": enc.detach(), "decoder_output": hidden.detach()}


def loss_only(w, cfg, prompts, batch):
    return cross_entropy_mean(forward(w, cfg, prompts, batch)[2], batch.labels)


# ----------------------------------------------------------------------------------------------------------
# Self-checks


def naive_row_logits(w32, cfg, prompt, input_ids, target_ids):
    """One row, no padding, float64, attention as explicit loops over positions and heads with the scalar bucket."""
    w = cast(w32, torch.float64)
    H, dk, d = cfg.num_heads, cfg.d_kv, cfg.d_model

    def rms(v, g):
        return v / math.sqrt(sum(a * a for a in v.tolist()) / d + cfg.eps) * g

    def attend(prefix, xs_q, xs_kv, table, bidirectional, causal):
        out = []
        for i, xq in enumerate(xs_q):
            heads = []
            for h in range(H):
                cols = slice(h * dk, (h + 1) * dk)
                q = w[prefix + "q.weight"][cols] @ xq
                keys = range(i + 1) if causal else range(len(xs_kv))
                sc = []
                for j in keys:
                    s = float(q @ (w[prefix + "k.weight"][cols] @ xs_kv[j]))
                    if table is not None:
                        s += float(table[bucket_scalar(j - i, bidirectional, cfg.num_buckets, cfg.max_distance), h])
                    sc.append(s)
                mx = max(sc)
                ex = [math.exp(s - mx) for s in sc]
                tot = sum(ex)
                heads.append(sum((ex[n] / tot) * (w[prefix + "v.weight"][cols] @ xs_kv[j]) for n, j in enumerate(keys)))
            out.append(w[prefix + "o.weight"] @ torch.cat(heads))
        return out

    def ffn(prefix, x):
        if cfg.gated:
            a = (w[prefix + "wi_0.weight"] @ x).tolist()
            gl = torch.tensor([0.5 * z * (1 + math.tanh(math.sqrt(2 / math.pi) * (z + 0.044715 * z ** 3))) for z in a],
                              dtype=torch.float64)
            h = gl * (w[prefix + "wi_1.weight"] @ x)
        else:
            h = torch.tensor([max(z, 0.0) for z in (w[prefix + "wi.weight"] @ x).tolist()], dtype=torch.float64)
        return w[prefix + "wo.weight"] @ h

    xs = [prompt[p].to(torch.float64) for p in range(prompt.shape[0])] + [w["shared.weight"][t] for t in input_ids]
    enc_table = w["encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"]
    for i in range(cfg.num_layers):
        p = f"encoder.block.{i}.layer."
        a = [rms(x, w[p + "0.layer_norm.weight"]) for x in xs]
        xs = [x + o for x, o in zip(xs, attend(p + "0.SelfAttention.", a, a, enc_table, True, False))]
        xs = [x + ffn(p + "1.DenseReluDense.", rms(x, w[p + "1.layer_norm.weight"])) for x in xs]
    enc = [rms(x, w["encoder.final_layer_norm.weight"]) for x in xs]

    ys = [w["shared.weight"][t] for t in [PAD_TOKEN] + list(target_ids[:-1])]
    dec_table = w["decoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"]
    for i in range(cfg.decoder_layers):
        p = f"decoder.block.{i}.layer."
        a = [rms(y, w[p + "0.layer_norm.weight"]) for y in ys]
        ys = [y + o for y, o in zip(ys, attend(p + "0.SelfAttention.", a, a, dec_table, False, True))]
        a = [rms(y, w[p + "1.layer_norm.weight"]) for y in ys]
        ys = [y + o for y, o in zip(ys, attend(p + "1.EncDecAttention.", a, enc, None, False, False))]
        ys = [y + ffn(p + "2.DenseReluDense.", rms(y, w[p + "2.layer_norm.weight"])) for y in ys]
    head = w["shared.weight"] if cfg.tie else w["lm_head.weight"]
    scale = cfg.d_model ** -0.5 if cfg.tie else 1.0
    return torch.stack([head @ (rms(y, w["decoder.final_layer_norm.weight"]) * scale) for y in ys])


BUCKET_SETTINGS = [(32, 128), (8, 16), (16, 32)]
BUCKET_RANGE = 300


def check_ops():
    g = torch.Generator().manual_seed(7)
    x = torch.randn(5, 33, generator=g, dtype=torch.float64) * 3
    gw = torch.randn(33, generator=g, dtype=torch.float64)
    manual = torch.stack([r / math.sqrt(sum(v * v for v in r.tolist()) / 33 + 1e-6) for r in x]) * gw
    assert torch.allclose(rms_norm(x, gw, 1e-6), manual, rtol=0, atol=1e-12)
    assert torch.allclose(gelu_new(x), torch.nn.functional.gelu(x, approximate="tanh"), rtol=0, atol=1e-12)
    rel = torch.arange(-BUCKET_RANGE, BUCKET_RANGE + 1, dtype=torch.long)
    for nb, md in BUCKET_SETTINGS:
        for bidirectional in (True, False):
            t = relative_position_bucket(rel, bidirectional, nb, md).tolist()
            s = [bucket_scalar(r, bidirectional, nb, md) for r in rel.tolist()]
            assert t == s, f"bucket tensor vs scalar differ for {nb}/{md}/{bidirectional}"
            assert min(t) >= 0 and max(t) == nb - 1
    # hand-computed values of HF's default (32 buckets, max distance 128)
    hand = {0: 0, 1: 17, -1: 1, 7: 23, -7: 7, 8: 24, -8: 8, 12: 25, 16: 26, 32: 28, -64: 14, 127: 31, 500: 31, -500: 15}
    for r, b in hand.items():
        assert bucket_scalar(r, True, 32, 128) == b, (r, bucket_scalar(r, True, 32, 128), b)
    hand_causal = {0: 0, 5: 0, -1: 1, -15: 15, -16: 16, -20: 17, -32: 21, -64: 26, -127: 31, -1000: 31}
    for r, b in hand_causal.items():
        assert bucket_scalar(r, False, 32, 128) == b, (r, bucket_scalar(r, False, 32, 128), b)
    print("ops: rms_norm == formula, gelu_new == F.gelu(approximate='tanh'), buckets tensor == scalar == hand values")


def check_case(name, w32, cfg, prompts, batch, r32, r64, fd_coords=8):
    """Asserts the self-consistency of one case; prints the numbers."""
    loss_rel = abs(r32["loss"].double().item() - r64["loss"].item()) / abs(r64["loss"].item())
    gmax = r64["prompt_grad"].abs().max().item()
    grad_rel = (r32["prompt_grad"].double() - r64["prompt_grad"]).abs().max().item() / gmax
    mask = batch.decoder_mask.bool()
    logit_abs = (r32["logits"].double() - r64["logits"])[mask].abs().max().item()
    print(f"  [{name}] loss f32 {r32['loss'].item():.7f} f64 {r64['loss'].item():.10f}; f32-vs-f64: "
          f"loss rel {loss_rel:.2e}, grad max|diff|/max|grad| {grad_rel:.2e}, logits max|diff| {logit_abs:.2e}")
    assert loss_rel < 1e-5 and grad_rel < 2e-5 and logit_abs < 1e-4, "float32 and float64 disagree"

    w64 = cast(w32, torch.float64)
    p64 = prompts.to(torch.float64)
    ag = r64["prompt_grad"]
    flat = ag.flatten().abs()
    top = torch.topk(flat, fd_coords // 2).indices.tolist()
    gsel = torch.Generator().manual_seed(len(name) * 1000 + flat.numel())
    rnd = torch.randperm(flat.numel(), generator=gsel)[: fd_coords // 2].tolist()
    h = 1e-5
    worst_rel, worst_norm = 0.0, 0.0
    for idx in top + rnd:
        pp, pm = p64.clone().flatten(), p64.clone().flatten()
        pp[idx] += h
        pm[idx] -= h
        with torch.no_grad():
            fp = loss_only(w64, cfg, pp.view_as(p64), batch).item()
            fm = loss_only(w64, cfg, pm.view_as(p64), batch).item()
        fd = (fp - fm) / (2 * h)
        a = ag.flatten()[idx].item()
        rel = abs(fd - a) / max(abs(a), abs(fd), 1e-300)
        if idx in top:
            worst_rel = max(worst_rel, rel)
        worst_norm = max(worst_norm, abs(fd - a) / gmax)
    print(f"  [{name}] finite differences (h={h:g}, {len(top)} largest + {len(rnd)} random coords): "
          f"max rel err (largest) {worst_rel:.2e}, max |fd-ad|/max|grad| (all) {worst_norm:.2e}")
    assert worst_rel < 1e-6 and worst_norm < 1e-7, "autograd disagrees with finite differences"

    worst = 0.0
    for b, (pi, inp, tgt) in enumerate(batch.rows):
        ref = naive_row_logits(w32, cfg, prompts[pi], inp, tgt)
        worst = max(worst, (ref - r64["logits"][b, : len(tgt)]).abs().max().item())
    print(f"  [{name}] unbatched loop forward vs batched (f64): max|diff| {worst:.2e}")
    assert worst < 1e-10, "batched forward disagrees with the per-row loop forward"

    total = 0.0
    for b, (_, _, tgt) in enumerate(batch.rows):
        for j, t in enumerate(tgt):
            row = r64["logits"][b, j]
            total += torch.logsumexp(row, 0).item() - row[t].item()
    assert abs(total / batch.target_count - r64["loss"].item()) < 1e-12


COMMON_MUTANTS = ["attn_scale", "no_position_bias", "bias_sign", "encoder_unidirectional", "decoder_bidirectional",
                  "cross_attention_bias", "norm_subtracts_mean", "no_decoder_causal", "q_uses_k",
                  "no_encoder_final_norm", "no_decoder_final_norm", "lm_rescale_flipped", "decoder_start_eos",
                  "prompt_after_input"]
PADDING_MUTANTS = ["no_encoder_mask"]  # only visible when some row is padded
FFN_MUTANTS = {False: ["gelu_for_relu"], True: ["gelu_erf", "gate_swapped"]}


def check_mutants(name, w32, cfg, prompts, batch, r32, r64):
    """How far each plausible bug moves the target-position logits (or the prompt grad), in units of float32
    noise. Returns {bug: ratio}; a bug need not show in every case (a bucket mistake is invisible while all
    distances are exact buckets) but must show in some case of each model, which generate() asserts."""
    mask = batch.decoder_mask.bool()
    noise = (r32["logits"].double() - r64["logits"])[mask].abs().max().item()
    gnoise = (r32["prompt_grad"].double() - r64["prompt_grad"]).abs().max().item()
    padded = bool((batch.encoder_mask == 0).any())
    bugs = COMMON_MUTANTS + (PADDING_MUTANTS if padded else []) + FFN_MUTANTS[cfg.gated]
    parts = []
    ratios = {}
    for bug in bugs:
        rb = run(w32, cfg, prompts, batch, torch.float64, bug)
        dl = (rb["logits"] - r64["logits"])[mask].abs().max().item()
        dg = (rb["prompt_grad"] - r64["prompt_grad"]).abs().max().item()
        ratios[bug] = max(dl / noise, dg / gnoise)
        parts.append(f"{bug} {dl:.1e}")
    print(f"  [{name}] {len(bugs)} mutants, max|Δlogit| (f32 noise {noise:.1e}): " + ", ".join(parts))
    return ratios


def assert_mutants_visible(model, ratios_per_case, cfg):
    expected = COMMON_MUTANTS + PADDING_MUTANTS + FFN_MUTANTS[cfg.gated]
    best = {bug: max(r.get(bug, 0.0) for r in ratios_per_case) for bug in expected}
    weakest = min(best, key=best.get)
    assert best[weakest] > 100, f"{model}: mutant {weakest} is invisible in every case (best {best[weakest]:.1f}x noise)"
    print(f"  [{model}] every mutant visible in some case; weakest {weakest} at {best[weakest]:.0f}x float32 noise")


# ----------------------------------------------------------------------------------------------------------
# Fixture generation


def random_rows(gen, V, shapes, prompt_indices):
    rows = []
    for (li, lt), pi in zip(shapes, prompt_indices):
        inp = torch.randint(0, V, (li,), generator=gen).tolist()
        tgt = torch.randint(0, V, (lt,), generator=gen).tolist()
        rows.append((pi, inp, tgt))
    return rows


PROMPT_STD = 1.0  # like the token embeddings the prompt sits beside


def random_prompts(gen, n, P, d):
    return (torch.randn(n, P, d, generator=gen, dtype=torch.float64) * PROMPT_STD).to(torch.float32)


def case_tensors(batch, prompts, r32, r64):
    return {
        "prompts": prompts,
        "input_ids": batch.input_ids,
        "input_lengths": batch.input_lengths,
        "target_ids": batch.target_ids,
        "target_lengths": batch.target_lengths,
        "prompt_index": batch.prompt_index,
        "encoder_mask": batch.encoder_mask,
        "decoder_input_ids": batch.decoder_input_ids,
        "decoder_mask": batch.decoder_mask,
        "encoder_output": r32["encoder_output"],
        "logits": r32["logits"],
        "loss": r32["loss"].reshape(1),
        "prompt_grad": r32["prompt_grad"],
        "logits_f64": r64["logits"],
        "loss_f64": r64["loss"].reshape(1),
        "prompt_grad_f64": r64["prompt_grad"],
    }


def write_model(dir_, cfg, w, hf_extras):
    os.makedirs(dir_, exist_ok=True)
    with open(os.path.join(dir_, "config.json"), "w") as f:
        json.dump(cfg.to_hf_json(), f, indent=2, sort_keys=True)
        f.write("\n")
    t = dict(w)
    if hf_extras:
        # What converted v1.0 checkpoints also hold and a loader must ignore: the tied embed_tokens copies and
        # a stray cross-attention bias table that HF lists in _keys_to_ignore_on_load_unexpected.
        t["encoder.embed_tokens.weight"] = w["shared.weight"].clone()
        t["decoder.embed_tokens.weight"] = w["shared.weight"].clone()
        g = torch.Generator().manual_seed(99)
        t["decoder.block.0.layer.1.EncDecAttention.relative_attention_bias.weight"] = torch.randn(
            cfg.num_buckets, cfg.num_heads, generator=g, dtype=torch.float64).to(torch.float32)
    save_file(t, os.path.join(dir_, "model.safetensors"), {"format": "pt"})


MODELS = {
    # name: (config, weight seed, HF extras)
    "v1_0": (Config(vocab_size=60, d_model=32, d_kv=8, d_ff=48, num_layers=2, num_heads=4, num_decoder_layers=None,
                    num_buckets=8, max_distance=16, feed_forward_proj="relu", tie_word_embeddings=True,
                    n_positions=512), 4321, True),
    "v1_1": (Config(vocab_size=61, d_model=32, d_kv=8, d_ff=40, num_layers=2, num_heads=3, num_decoder_layers=3,
                    num_buckets=8, max_distance=16, feed_forward_proj="gated-gelu", tie_word_embeddings=False),
             8765, False),
    "mt5": (Config(vocab_size=67, d_model=24, d_kv=6, d_ff=36, num_layers=2, num_heads=4, num_decoder_layers=2,
                   num_buckets=8, max_distance=16, feed_forward_proj="gated-gelu", tie_word_embeddings=False,
                   model_type="mt5"), 9753, False),
}

# model, case name, P, num_prompts, [(input_len, target_len)], prompt_index per row, seed, description
CASES = [
    ("v1_0", "case-a", 5, 1, [(6, 3), (0, 4), (2, 1)], [0, 0, 0], 11,
     "one prompt, P=5, B=3 rows of unequal length (encoder and decoder padding); row 1 has empty input_ids "
     "(the encoder sees the prompt only)"),
    ("v1_0", "case-b", 4, 2, [(3, 2), (5, 1), (1, 3), (7, 2)], [0, 1, 1, 0], 12,
     "two prompts, P=4, B=4; rows 0 and 3 use prompt 0, rows 1 and 2 use prompt 1"),
    ("v1_0", "case-c", 1, 1, [(4, 2)], [0], 13, "P=1, B=1, no padding"),
    ("v1_1", "case-a", 3, 2, [(5, 2), (0, 3), (2, 4)], [1, 0, 1], 21,
     "untied gated-gelu model with H*d_kv=24 != d_model=32 and 3 decoder layers; two prompts, P=3, B=3, "
     "row 1 has empty input_ids"),
    ("v1_1", "case-b", 6, 1, [(12, 3), (3, 9)], [0, 0], 22,
     "long rows: encoder distances up to 17 and decoder distances up to 8 reach the logarithmic buckets and "
     "the max_distance clamp; P=6, B=2"),
    ("mt5", "case-a", 4, 2, [(9, 3), (0, 5), (14, 2)], [1, 0, 1], 31,
     "mT5 config (model_type mt5, MT5ForConditionalGeneration, no dense_act_fn / is_gated_act): gated-gelu, "
     "untied; two prompts, P=4, B=3, row 1 has empty input_ids, encoder distances up to 17"),
]

SGD_MODEL = "v1_1"
SGD_P = 4
SGD_SHAPES = [(6, 2), (3, 4), (9, 1), (0, 3), (5, 2)]
SGD_SEED = 31
SGD_LR = 0.5


def generate(out, checks):
    """Writes every fixture under `out`. With `checks`, runs and prints the self-checks as well."""
    gen_meta = {"generator": "tools/reference/t5_reference.py", "torch": torch.__version__}
    weights = {}
    for mname, (cfg, seed, extras) in MODELS.items():
        w = make_weights(cfg, seed)
        weights[mname] = w
        write_model(os.path.join(out, mname), cfg, w, extras)
        if checks:
            t, _ = load_file(os.path.join(out, mname, "model.safetensors"))
            assert all(torch.equal(t[k], v) for k, v in w.items())

    mutant_ratios = {m: [] for m in MODELS}
    for (mname, cname, P, nprompts, shapes, pidx, seed, desc) in CASES:
        cfg = MODELS[mname][0]
        w = weights[mname]
        gen = torch.Generator().manual_seed(seed)
        prompts = random_prompts(gen, nprompts, P, cfg.d_model)
        batch = Batch(random_rows(gen, cfg.vocab_size, shapes, pidx), P)
        r32 = run(w, cfg, prompts, batch, torch.float32)
        r64 = run(w, cfg, prompts, batch, torch.float64)
        if checks:
            check_case(f"{mname}/{cname}", w, cfg, prompts, batch, r32, r64)
            mutant_ratios[mname].append(check_mutants(f"{mname}/{cname}", w, cfg, prompts, batch, r32, r64))
        meta = dict(gen_meta, model=mname, description=desc, prompt_length=str(P), num_prompts=str(nprompts),
                    rows=str(len(shapes)), encoder_length=str(batch.Tenc), decoder_length=str(batch.Tdec),
                    target_count=str(batch.target_count), padding=str(PAD))
        save_file(case_tensors(batch, prompts, r32, r64), os.path.join(out, mname, cname + ".safetensors"), meta)

    if checks:
        for mname, ratios in mutant_ratios.items():
            assert_mutants_visible(mname, ratios, MODELS[mname][0])

    rel = torch.arange(-BUCKET_RANGE, BUCKET_RANGE + 1, dtype=torch.long)
    buckets = {"relative_position": rel}
    for nb, md in BUCKET_SETTINGS:
        buckets[f"bidirectional_{nb}_{md}"] = relative_position_bucket(rel, True, nb, md)
        buckets[f"causal_{nb}_{md}"] = relative_position_bucket(rel, False, nb, md)
    save_file(buckets, os.path.join(out, "buckets.safetensors"),
              dict(gen_meta, description="HF _relative_position_bucket(relative_position = key - query) per setting"))

    # One full-batch SGD step from a pre-tokenized JSONL file: what `softprompt train` must reproduce.
    cfg, w = MODELS[SGD_MODEL][0], weights[SGD_MODEL]
    gen = torch.Generator().manual_seed(SGD_SEED)
    init = random_prompts(gen, 1, SGD_P, cfg.d_model)
    rows = random_rows(gen, cfg.vocab_size, SGD_SHAPES, [0] * len(SGD_SHAPES))
    batch = Batch(rows, SGD_P)
    r32 = run(w, cfg, init, batch, torch.float32)
    r64 = run(w, cfg, init, batch, torch.float64)
    if checks:
        check_case("sgd", w, cfg, init, batch, r32, r64)
    sgd = init[0] - SGD_LR * r32["prompt_grad"][0]
    sdir = os.path.join(out, "sgd")
    os.makedirs(sdir, exist_ok=True)
    with open(os.path.join(sdir, "train.jsonl"), "w") as f:
        for (_, inp, tgt) in rows:
            f.write(json.dumps({"input_ids": inp, "target_ids": tgt}, separators=(", ", ": ")) + "\n")
    smeta = dict(gen_meta, model=SGD_MODEL, prompt_length=str(SGD_P), rows=str(len(rows)))
    save_file({"prompt_embeddings": init[0]}, os.path.join(sdir, "init.safetensors"),
              dict(smeta, description="initial prompt for the one-step SGD fixture"))
    save_file({"prompt_embeddings": sgd}, os.path.join(sdir, "expected.safetensors"),
              dict(smeta, description=f"init - {SGD_LR} * grad: one SGD step, batch = all rows of train.jsonl"))
    save_file({"loss": r32["loss"].reshape(1), "prompt_grad": r32["prompt_grad"][0],
               "loss_f64": r64["loss"].reshape(1), "prompt_grad_f64": r64["prompt_grad"][0]},
              os.path.join(sdir, "reference.safetensors"), dict(smeta, description="loss and prompt gradient at init"))
    if checks:
        print(f"  [sgd] loss {r32['loss'].item():.7f}; max|grad| {r32['prompt_grad'].abs().max().item():.3e}")


README = """# T5 prompt-tuning fixtures

Made by `tools/reference/t5_reference.py`, an independent plain-PyTorch (CPU, {torch}) implementation of
T5 (`T5ForConditionalGeneration`) in Hugging Face's semantics plus PEFT-style seq2seq prompt tuning.
Regenerate (deterministic; the script generates twice and checks the bytes are identical) with:

    /usr/bin/python3 tools/reference/t5_reference.py --out tests/SoftPrompt.Tests/fixtures/t5

Every `.safetensors` file here was written by `tools/reference/safetensors_io.py`.

## Models (random weights, float32, HF names and config.json fields)
- `v1_0/` (t5 v1.0 style): vocab 60, d_model 32, d_kv 8, num_heads 4 (H·d_kv = 32), d_ff 48, num_layers 2,
  no `num_decoder_layers` field (defaults to num_layers = 2), 8 buckets, max distance 16, eps 1e-6,
  feed_forward_proj "relu" (`DenseReluDense.wi`, `.wo`), tie_word_embeddings true (LM head = `shared.weight`,
  decoder output scaled by d_model^-0.5 first), n_positions 512. The file also holds what converted v1.0
  checkpoints carry and a loader must ignore: `encoder.embed_tokens.weight`, `decoder.embed_tokens.weight`
  (copies of `shared.weight`) and `decoder.block.0.layer.1.EncDecAttention.relative_attention_bias.weight`
  (random; HF ignores it on load).
- `v1_1/` (t5 v1.1 / LM-adapted style): vocab 61, d_model 32, d_kv 8, num_heads 3 (H·d_kv = 24 ≠ d_model),
  d_ff 40, num_layers 2, num_decoder_layers 3, 8 buckets, max distance 16, feed_forward_proj "gated-gelu"
  (`wi_0`, `wi_1`, `wo`; gelu_new(wi_0 x) · wi_1 x), tie_word_embeddings false (`lm_head.weight` [V, d], no
  rescale), no n_positions.
- `mt5/` (mT5 config): model_type "mt5", `MT5ForConditionalGeneration`, no dense_act_fn / is_gated_act (as
  google/mt5-small's config.json); vocab 67, d_model 24, d_kv 6, num_heads 4, d_ff 36, 2 + 2 layers,
  8 buckets, max distance 16, gated-gelu, tie_word_embeddings false; the v1.1 arithmetic.

Matrices follow HF's T5 init (q ~ N(0, 1/(d·d_kv)), k, v, wi ~ N(0, 1/d), o ~ N(0, 1/(H·d_kv)),
wo ~ N(0, 1/d_ff)); `shared` ~ N(0, {shared}²); relative-attention-bias tables ~ N(0, {bias}²) (larger than HF's
init so that bucket mistakes are visible); norm weights 1 + {lnw}·N(0,1); untied lm_head ~ N(0, ({gain}/√d)²).
Prompts ~ N(0, {pstd}²).

## Case files (`<model>/case-*.safetensors`)
Conventions: row b's encoder input is [prompt `prompt_index[b]` (P vectors), `input_ids[b]`], right-padded
to Tenc = P + max_b input_lengths[b]; padded positions embed token 0 and are masked out as keys (encoder
self-attention and cross-attention). Relative positions count the prompt: prompt vector p sits at
position p, input token i at P+i. The decoder input is [0 (decoder_start_token_id), target_ids[b][:-1]],
right-padded with 0 to Tdec = max_b target_lengths[b]; decoder position j predicts target_ids[b][j].
loss = mean over all target tokens of the batch of logsumexp(logits) − logits[target].

| tensor | shape | dtype | meaning |
|---|---|---|---|
| prompts | [num_prompts, P, d] | F32 | the prompt embeddings |
| input_ids | [B, max(1, max input_len)] | I64 | padded with -1 |
| input_lengths | [B] | I64 | |
| target_ids | [B, Tdec] | I64 | padded with -1 (these are also the labels) |
| target_lengths | [B] | I64 | |
| prompt_index | [B] | I64 | which prompt row b uses |
| encoder_mask | [B, Tenc] | I64 | 1 at real encoder positions (t < P + input_len) |
| decoder_input_ids | [B, Tdec] | I64 | shifted targets, padded with 0 |
| decoder_mask | [B, Tdec] | I64 | 1 where a target is predicted (compare logits only there) |
| encoder_output | [B, Tenc, d] | F32 | after encoder.final_layer_norm (padded positions are not meaningful) |
| logits | [B, Tdec, V] | F32 | decoder logits |
| loss | [1] | F32 | |
| prompt_grad | [num_prompts, P, d] | F32 | d loss / d prompts |
| logits_f64, loss_f64, prompt_grad_f64 | as above | F64 | the same computed in float64 (weights and prompts upcast from the F32 values) |

`__metadata__`: model, description, prompt_length, num_prompts, rows, encoder_length, decoder_length,
target_count, padding.

{cases}

## `buckets.safetensors`
`relative_position` [{nrel}] I64 = -{brange} .. {brange} (key position − query position) and, per setting
(num_buckets, max_distance) in {settings}, `bidirectional_<nb>_<md>` and `causal_<nb>_<md>` [{nrel}] I64: HF's
`_relative_position_bucket` computed in float32 like HF. The script asserts these equal a pure-Python
double-precision version and hand-computed values.

## `sgd/` ({sgd_model} model, P = {sgd_p})
- `train.jsonl`: {sgd_rows} pre-tokenized rows `{{"input_ids": [...], "target_ids": [...]}}` (input to the encoder,
  targets to the decoder); one row has empty input_ids.
- `init.safetensors`: `prompt_embeddings` [{sgd_p}, 32] F32.
- `expected.safetensors`: `prompt_embeddings` = init − {sgd_lr}·grad (float32), i.e.
  `softprompt train --model v1_1 --optimizer sgd --lr {sgd_lr} --steps 1 --batch-size {sgd_rows} --no-shuffle --init init.safetensors`.
- `reference.safetensors`: `loss` [1], `prompt_grad` [{sgd_p}, 32] F32 and their F64 versions at init.

Self-checks asserted at generation (the run prints the numbers): bucket function tensor == scalar == hand
values; autograd prompt gradient vs central finite differences in float64 (h = 1e-5, 4 largest + 4 random
coordinates per case; relative error < 1e-6); float32 vs float64 (loss relative < 1e-5, gradient
max|diff| < 2e-5·max|grad|, logits < 1e-4); batched forward vs a loop-per-position unbatched forward of
each row with explicit per-head attention and the scalar bucket function (< 1e-10); mutants (1/sqrt(d_kv)
scale, no position bias, bias sign, encoder causal buckets, decoder bidirectional buckets, bias in
cross-attention, mean-subtracting norm, no causal mask, q uses k, missing final norms, LM-head rescale
flipped, wrong decoder start, prompt after the input, unmasked encoder padding, GELU for ReLU, erf GELU,
swapped gate) each move the logits or the prompt gradient by > 100x the float32-vs-float64 difference in
at least one case of each model (bucket mistakes only show once distances leave the exact buckets);
two generations byte-identical.
"""


def write_readme(out):
    lines = ["| file | P | prompts | rows (input_len, target_len, prompt) | Tenc | Tdec | description |",
             "|---|---|---|---|---|---|---|"]
    for (mname, cname, P, nprompts, shapes, pidx, seed, desc) in CASES:
        tenc = P + max(a for a, _ in shapes)
        tdec = max(b for _, b in shapes)
        rows = ", ".join(f"({a},{b},{p})" for (a, b), p in zip(shapes, pidx))
        lines.append(f"| {mname}/{cname}.safetensors | {P} | {nprompts} | {rows} | {tenc} | {tdec} | {desc} |")
    text = README.format(torch=torch.__version__, shared=SHARED_STD, bias=BIAS_TABLE_STD, lnw=LN_WEIGHT_STD,
                         gain=LM_HEAD_GAIN, pstd=PROMPT_STD, cases="\n".join(lines), nrel=2 * BUCKET_RANGE + 1,
                         brange=BUCKET_RANGE, settings=", ".join(f"({a}, {b})" for a, b in BUCKET_SETTINGS),
                         sgd_model=SGD_MODEL, sgd_p=SGD_P, sgd_rows=len(SGD_SHAPES), sgd_lr=SGD_LR)
    with open(os.path.join(out, "README.md"), "w") as f:
        f.write(text)


OWNED = ["v1_0", "v1_1", "mt5", "sgd", "buckets.safetensors", "README.md"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True, help="fixture folder, e.g. tests/SoftPrompt.Tests/fixtures/t5")
    ap.add_argument("--no-checks", action="store_true", help="skip the self-checks (faster)")
    args = ap.parse_args()

    if not args.no_checks:
        check_ops()
    with tempfile.TemporaryDirectory() as tmp:
        first, second = os.path.join(tmp, "a"), os.path.join(tmp, "b")
        print("generating (with self-checks):" if not args.no_checks else "generating:")
        generate(first, checks=not args.no_checks)
        write_readme(first)
        generate(second, checks=False)
        write_readme(second)
        a, b = tree_bytes(first), tree_bytes(second)
        for rel, blob in a.items():
            if rel.endswith(".safetensors"):
                load_file(os.path.join(first, rel))
                assert int.from_bytes(blob[:8], "little") % 8 == 0
        assert a.keys() == b.keys() and all(a[k] == b[k] for k in a), "two generations differ: not deterministic"
        total = sum(map(len, a.values()))
        assert total < 1_500_000, f"fixtures are {total} bytes; keep them under 1.5 MB"
        print(f"deterministic: two generations are byte-identical ({len(a)} files, {total} bytes)")
        os.makedirs(args.out, exist_ok=True)
        install_fixtures(first, args.out, OWNED)
    print_sizes(a)


if __name__ == "__main__":
    main()

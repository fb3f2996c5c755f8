#!/usr/bin/python3
"""Pretrains the tiny Llama behind `softprompt demo --model-family llama` and writes it beside the GPT-2 demo.

The language, the task rows, the batch walk and the prompt-tuning recipe are the GPT-2 demo's (make_demo.py),
read from that module so the demos cannot drift apart; only the model differs. Llama is decoder-only like GPT-2,
so pretraining sequences are the GPT-2 demo's

    [<fill>]*k  TASK  x1 .. xn  <sep>  y1 .. ym  <eos>        k in 0..3, n in 3..8

with the loss on y1..ym <eos> only, and the prompt-tuning rows are the GPT-2 demo's own data files,
{"input_ids": [x.., <sep>], "target_ids": [y.., <eos>]}. A soft prompt of length 4 takes positions 0..3 (RoPE
counts the prompt), exactly where `<fill> <fill> <fill> TASK` sat in pretraining (k = 3).

The model is Llama in Hugging Face's layout and semantics (LlamaForCausalLM): the math is `transformer` from
llama_reference.py, the code the Llama fixtures are made with (RMSNorm, rotate-half RoPE, SwiGLU, grouped-query
attention, no biases). The vocabulary is the GPT-2 demo's 23 tokens with the same ids; `<eos>` (22) is both
bos_token_id and eos_token_id, as in the GPT-2 demo (the data never starts with a BOS).

Metric: exact match of greedy decoding = every target token is the argmax of its teacher-forced logits.
Per task the script measures on the dev rows the task token (a prompt made of the embeddings of
<fill> <fill> <fill> TASK, checked equal to feeding those tokens), untuned prompts, and prompts tuned with
the recorded recipe (only the prompt trainable; batches drawn like the C# BatchSampler) for several seeds.
Everything is seeded; one thread.

Usage: /usr/bin/python3 tools/reference/make_demo_llama.py --out src/SoftPrompt.Cli/Demo/llama
"""

import argparse
import json
import math
import os
import random
import shutil
import sys
import tempfile
import time

import torch
import torch.nn.functional as F

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_demo as lang  # noqa: E402  (the GPT-2 demo: language, data rows, sampler, recipe, formatting helpers)
from llama_reference import Batch, Config, cross_entropy_mean, embed, position_ids, transformer  # noqa: E402
from safetensors_io import load_file, save_file  # noqa: E402

torch.set_num_threads(1)

TASKS = lang.TASKS
TOKENS = lang.TOKENS  # exactly the GPT-2 demo's vocabulary: no <pad>, no <bos> (decoder-only needs neither)
VOCAB = lang.VOCAB
SEP_ID, FILL_ID, EOS_ID, TASK_ID = lang.SEP_ID, lang.FILL_ID, lang.EOS_ID, lang.TASK_ID
PROMPT_LENGTH = lang.PROMPT_LENGTH

# intermediate 172 = 64 * 2.6875, Llama-2-7B's ratio (11008 / 4096); 4 query heads share 2 key/value heads.
CONFIG = Config(vocab_size=len(TOKENS), hidden_size=64, intermediate_size=172, num_hidden_layers=2,
                num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=32, rms_norm_eps=1e-5,
                rope_theta=10000.0, rope_scaling=None, tie_word_embeddings=False)

RECIPE = dict(lang.RECIPE)  # the GPT-2 demo's recipe, unchanged: what `softprompt demo --model-family llama` runs


# ----------------------------------------------------------------------------------------------------------
# Pretraining

def init_weights(cfg, seed):
    """Hugging Face's Llama init (every matrix and the embedding N(0, 0.02), RMSNorm weights 1), with o_proj and
    down_proj further divided by sqrt(2 * layers) as GPT-2 does: the residual stream then starts at the same scale
    whatever the depth, which a tiny model trained at a high lr needs less than it likes."""
    g = torch.Generator().manual_seed(seed)

    def normal(*shape, std=0.02):
        return torch.randn(*shape, generator=g) * std

    d, inter, hd = cfg.hidden_size, cfg.intermediate_size, cfg.head_dim
    H, Hkv = cfg.num_attention_heads, cfg.num_key_value_heads
    proj_std = 0.02 / math.sqrt(2 * cfg.num_hidden_layers)
    w = {"model.embed_tokens.weight": normal(cfg.vocab_size, d)}
    for i in range(cfg.num_hidden_layers):
        p = f"model.layers.{i}."
        w[p + "input_layernorm.weight"] = torch.ones(d)
        w[p + "self_attn.q_proj.weight"] = normal(H * hd, d)
        w[p + "self_attn.k_proj.weight"] = normal(Hkv * hd, d)
        w[p + "self_attn.v_proj.weight"] = normal(Hkv * hd, d)
        w[p + "self_attn.o_proj.weight"] = normal(d, H * hd, std=proj_std)
        w[p + "post_attention_layernorm.weight"] = torch.ones(d)
        w[p + "mlp.gate_proj.weight"] = normal(inter, d)
        w[p + "mlp.up_proj.weight"] = normal(inter, d)
        w[p + "mlp.down_proj.weight"] = normal(d, inter, std=proj_std)
    w["model.norm.weight"] = torch.ones(d)
    if not cfg.tie_word_embeddings:
        w["lm_head.weight"] = normal(cfg.vocab_size, d)
    return w


def lm_logits(w, cfg, tokens):
    """Plain token sequences [B,T] (no prompt vectors): positions 0..T-1, as LlamaForCausalLM without a cache."""
    B, T = tokens.shape
    pos = torch.arange(T)[None, :].expand(B, T)
    return transformer(w, cfg, w["model.embed_tokens.weight"][tokens], pos)[1]


def pretrain(cfg, args, log):
    w = init_weights(cfg, args.seed)
    params = list(w.values())
    for p in params:
        p.requires_grad_(True)
    decay = [p for p in params if p.dim() == 2]  # matrices and embeddings; RMSNorm weights are not decayed
    no_decay = [p for p in params if p.dim() != 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": args.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=args.lr, betas=(0.9, 0.98))
    rng = random.Random(args.seed)
    t0 = time.time()
    avg = None
    for step in range(1, args.steps + 1):
        warm = min(1.0, step / args.warmup)
        frac = (step - 1) / max(1, args.steps - 1)
        lr = args.lr * warm * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac)))
        for gr in opt.param_groups:
            gr["lr"] = lr
        tokens, labels = lang.pretrain_batch(rng, args.batch)  # the GPT-2 demo's sequences, the same stream
        logits = lm_logits(w, cfg, tokens)
        loss = F.cross_entropy(logits.reshape(-1, cfg.vocab_size), labels.reshape(-1), ignore_index=-1)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        avg = loss.item() if avg is None else 0.98 * avg + 0.02 * loss.item()
        if step % args.log_every == 0 or step == args.steps:
            log(f"  pretrain step {step:5d}/{args.steps}  loss {avg:.4f}  lr {lr:.2e}  {time.time() - t0:5.1f}s")
    return {k: v.detach().clone().contiguous() for k, v in w.items()}


# ----------------------------------------------------------------------------------------------------------
# Prompt tuning, through llama_reference's Batch/embed/position_ids: the C# engine's exact layout

def forward_logits(w, cfg, prompt, batch):
    return transformer(w, cfg, embed(w, prompt[None], batch), position_ids(batch))[1]


def exact_match(w, cfg, prompt, rows, chunk=256):
    """Fraction of rows whose every target token is the argmax of its teacher-forced logits."""
    correct = 0
    with torch.no_grad():
        for i in range(0, len(rows), chunk):
            batch = Batch([(0, inp, tgt) for inp, tgt in rows[i : i + chunk]], prompt.shape[0])
            pred = forward_logits(w, cfg, prompt, batch).argmax(dim=-1)
            ok = (pred == batch.labels) | (batch.labels < 0)
            correct += int(ok.all(dim=1).sum())
    return correct / len(rows)


def token_path_exact_match(w, cfg, task, rows):
    """The same metric feeding the real tokens <fill>*3 TASK x <sep> y <eos> (no prompt vectors)."""
    correct = 0
    head = [FILL_ID] * lang.MAX_FILL + [TASK_ID[task]]
    with torch.no_grad():
        for inp, tgt in rows:
            pred = lm_logits(w, cfg, torch.tensor([head + inp + tgt]))[0].argmax(-1)
            first = len(head) + len(inp) - 1
            correct += int(pred[first : first + len(tgt)].tolist() == tgt)
    return correct / len(rows)


def init_prompt(w, kind, seed, init_range):
    g = torch.Generator().manual_seed(seed)
    d = w["model.embed_tokens.weight"].shape[1]
    if kind == "uniform":  # Lester et al.'s random-uniform init, in [-init_range, init_range)
        return (torch.rand(PROMPT_LENGTH, d, generator=g) * 2 - 1) * init_range
    if kind == "vocab":  # sampled vocabulary: embeddings of random symbols (never a task token)
        ids = torch.randint(0, len(lang.SYMBOLS), (PROMPT_LENGTH,), generator=g)
        return w["model.embed_tokens.weight"][ids].clone()
    raise ValueError(kind)


def tune(w, cfg, train, recipe, seed):
    prompt = init_prompt(w, recipe["init"], seed, recipe["init_range"]).requires_grad_(True)
    opt = torch.optim.AdamW([prompt], lr=recipe["lr"], betas=tuple(recipe["betas"]), eps=recipe["eps"],
                            weight_decay=recipe["weight_decay"])
    sampler = lang.Sampler(len(train), recipe["batch_size"], seed)
    loss = None
    for _ in range(recipe["steps"]):
        batch = Batch([(0, *train[i]) for i in sampler.next()], PROMPT_LENGTH)
        loss = cross_entropy_mean(forward_logits(w, cfg, prompt, batch), batch.labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return prompt.detach(), loss.item()


# ----------------------------------------------------------------------------------------------------------
# Output

def read_jsonl(path):
    with open(path) as f:
        return [(r["input_ids"], r["target_ids"]) for r in map(json.loads, f)]


def hf_config(cfg):
    c = cfg.to_hf_json()
    c["bos_token_id"] = c["eos_token_id"] = EOS_ID  # the GPT-2 demo's convention; there is no separate <bos>
    return c


README = """# Demo: a tiny Llama that knows four tasks

The model behind `softprompt demo --model-family llama`. Everything here is made by

    /usr/bin/python3 tools/reference/make_demo_llama.py --out src/SoftPrompt.Cli/Demo/llama

(PyTorch {torch}, CPU, one thread, fixed seeds; {minutes} minutes on one core). Do not edit by hand.

## The language and the data
The GPT-2 demo's (`../README.md`, `tools/reference/make_demo.py`), unchanged: the same {V} tokens with the same
ids (`model/vocab.json`): 16 symbols, `<sep>` ({sep}), `<fill>` ({fill}), four task tokens, `<eos>` ({eos}, also
`bos_token_id`). Llama is decoder-only like GPT-2, so pretraining uses the GPT-2 demo's sequences, n in
{min_n}..{max_n} and k in 0..{max_fill}, task uniform, loss on y1..ym `<eos>` only:

    [<fill>]*k  TASK  x1 .. xn  <sep>  y1 .. ym  <eos>

The prompt-tuning rows are the GPT-2 demo's own files (`../data/<task>.{{train,dev}}.jsonl`, checked equal to
what make_demo.py generates): the model reads the soft prompt, then `input_ids` = [x1..xn, `<sep>`], then
`target_ids` = [y1..ym, `<eos>`]; the loss is on the targets. A prompt of length {P} takes positions
0..{p_last} (RoPE counts the prompt), where `<fill> <fill> <fill> TASK` sat in pretraining.

Metric: exact match of greedy decoding, i.e. a row counts when every target token is the argmax of its
teacher-forced logits.

Recipe (`tasks.json`, the GPT-2 demo's, the same for every task): prompt length {P}, init random-uniform in
[-{init_range}, {init_range}), AdamW (betas 0.9/0.999, eps 1e-8, weight decay 0), constant lr {lr}, {steps}
steps of batch {batch}, no clipping, batches drawn by a seeded shuffle per epoch.

## Measured (PyTorch, dev rows)

| task | task token | untuned prompt (mean of {seeds} inits) | tuned prompt (mean / min of {seeds} seeds) |
|---|---|---|---|
{acc_table}

"task token" = the prompt made of the embeddings of `<fill> <fill> <fill> TASK` (checked equal to feeding
those tokens). `prompts/<task>.safetensors` holds the seed-0 tuned prompt (`prompt_embeddings` [{P}, {d}] F32);
its dev accuracy is `accuracy.reference_prompt` in `tasks.json`.

## Model (`model/`)
Llama in Hugging Face's layout and names (`LlamaForCausalLM`: `model.embed_tokens.weight`,
`model.layers.{{i}}.…`, `model.norm.weight`, `lm_head.weight`), F32, no biases: vocab {V}, hidden {d},
{L} layers, {H} query heads sharing {Hkv} key/value heads (grouped-query, head_dim {hd}), SwiGLU intermediate
{ff}, rotate-half RoPE (rope_theta {theta:g}, no scaling), RMSNorm eps {eps:g}, max_position_embeddings {npos},
untied lm_head. The math is `transformer` in `tools/reference/llama_reference.py`, the code the Llama fixtures
are made with. Pretrained with AdamW (lr {plr} peak, warmup {pwarm}, cosine to 10%, betas 0.9/0.98, weight
decay {pwd} on matrices and embeddings, clip 1.0) for {psteps} steps of {pbatch} sequences; init N(0, 0.02),
o_proj and down_proj / sqrt(2·layers), RMSNorm weights 1.
"""


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True, help="e.g. src/SoftPrompt.Cli/Demo/llama")
    ap.add_argument("--data", default=None, help="the GPT-2 demo's data folder (default: OUT/../data)")
    ap.add_argument("--steps", type=int, default=4000, help="pretraining steps")
    ap.add_argument("--batch", type=int, default=64, help="pretraining batch (sequences)")
    ap.add_argument("--lr", type=float, default=3e-3, help="pretraining peak lr")
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--weight-decay", type=float, default=0.01)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tune-seeds", type=int, default=3, help="prompt-tuning runs per task in the verification")
    ap.add_argument("--log-every", type=int, default=250)
    ap.add_argument("--smoke", action="store_true", help="do not fail on low accuracies (quick test runs only)")
    args = ap.parse_args()
    t_start = time.time()
    recipe = RECIPE
    # Not OUT/../data: the OS cannot resolve ".." through an OUT that does not exist yet (the first run).
    data_dir = args.data or os.path.join(os.path.dirname(os.path.abspath(args.out)), "data")

    def log(msg):
        print(msg, flush=True)

    # The reused rows must be the ones make_demo.py generates: same language, same split.
    splits = {}
    for task in TASKS:
        train, dev = lang.make_rows(task)
        for name, rows in (("train", train), ("dev", dev)):
            path = os.path.join(data_dir, f"{task}.{name}.jsonl")
            assert read_jsonl(path) == rows, f"{path} differs from make_demo.make_rows('{task}'); regenerate the GPT-2 demo"
        splits[task] = (train, dev)

    cfg = CONFIG
    log(f"pretraining Llama: vocab {cfg.vocab_size}, hidden {cfg.hidden_size}, {cfg.num_attention_heads} heads / "
        f"{cfg.num_key_value_heads} kv heads x {cfg.head_dim}, intermediate {cfg.intermediate_size}, "
        f"{cfg.num_hidden_layers} layers; {args.steps} steps x {args.batch}")
    w = pretrain(cfg, args, log)

    tasks = []
    with tempfile.TemporaryDirectory() as tmp:
        for sub in ("model", "prompts"):
            os.makedirs(os.path.join(tmp, sub))
        save_file(w, os.path.join(tmp, "model", "model.safetensors"), {"format": "pt"})
        w, _ = load_file(os.path.join(tmp, "model", "model.safetensors"))  # verify what was written
        with open(os.path.join(tmp, "model", "config.json"), "w") as f:
            json.dump(hf_config(cfg), f, indent=2, sort_keys=True)
            f.write("\n")
        with open(os.path.join(tmp, "model", "vocab.json"), "w") as f:
            json.dump(VOCAB, f, indent=2, ensure_ascii=False)
            f.write("\n")

        log(f"verifying (dev exact match; recipe: {recipe['init']} init, AdamW lr {recipe['lr']}, "
            f"{recipe['steps']} steps x {recipe['batch_size']}, {args.tune_seeds} seeds):")
        for task in TASKS:
            t0 = time.time()
            train, dev = splits[task]
            # (1) the real task token, as a prompt and as tokens (identical in Llama: no position embeddings,
            # RoPE sees the same positions 0..3 either way)
            token_prompt = w["model.embed_tokens.weight"][[FILL_ID] * lang.MAX_FILL + [TASK_ID[task]]].clone()
            acc_token = exact_match(w, cfg, token_prompt, dev)
            acc_token_path = token_path_exact_match(w, cfg, task, dev)
            assert acc_token == acc_token_path, (task, acc_token, acc_token_path)
            # (2) untuned prompts, (3) tuned prompts
            seeds = range(args.tune_seeds)
            untuned = [exact_match(w, cfg, init_prompt(w, recipe["init"], s, recipe["init_range"]), dev) for s in seeds]
            untuned_vocab = [exact_match(w, cfg, init_prompt(w, "vocab", s, recipe["init_range"]), dev) for s in seeds]
            tuned, losses, prompts = [], [], []
            for s in seeds:
                prompt, loss = tune(w, cfg, train, recipe, s)
                tuned.append(exact_match(w, cfg, prompt, dev))
                losses.append(loss)
                prompts.append(prompt)
            save_file({"prompt_embeddings": prompts[0]}, os.path.join(tmp, "prompts", f"{task}.safetensors"),
                      {"format": "pt", "task": task, "description": "seed-0 tuned prompt of make_demo_llama.py"})
            reloaded, _ = load_file(os.path.join(tmp, "prompts", f"{task}.safetensors"))
            acc_ref = exact_match(w, cfg, reloaded["prompt_embeddings"], dev)
            log(f"  {task:9s} task token {acc_token:.3f} | untuned {sum(untuned) / len(untuned):.3f} "
                f"(vocab init {sum(untuned_vocab) / len(untuned_vocab):.3f}) | tuned "
                + " ".join(f"{a:.3f}" for a in tuned) + " (last batch loss " + " ".join(f"{l:.4f}" for l in losses)
                + f") | {time.time() - t0:.1f}s")
            r = lambda v: round(v, 4)  # noqa: E731
            tasks.append({
                "name": task,
                "description": lang.DESCRIPTIONS[task],
                "task_token": f"<{task}>",
                "task_token_id": TASK_ID[task],
                "filler_id": FILL_ID,
                "sep_id": SEP_ID,
                "eos_id": EOS_ID,
                "train": f"../data/{task}.train.jsonl",
                "dev": f"../data/{task}.dev.jsonl",
                "train_rows": len(train),
                "dev_rows": len(dev),
                "example": {"input": lang.show(dev[0][0]), "target": lang.show(dev[0][1])},
                "recipe": dict(recipe),
                "reference_prompt": f"prompts/{task}.safetensors",
                "accuracy": {
                    "task_token": r(acc_token),
                    "untuned_mean": r(sum(untuned) / len(untuned)),
                    "untuned_per_seed": [r(a) for a in untuned],
                    "untuned_vocab_init_mean": r(sum(untuned_vocab) / len(untuned_vocab)),
                    "tuned_mean": r(sum(tuned) / len(tuned)),
                    "tuned_min": r(min(tuned)),
                    "tuned_per_seed": [r(a) for a in tuned],
                    "reference_prompt": r(acc_ref),
                },
            })

        good = [t["name"] for t in tasks if t["accuracy"]["tuned_min"] >= 0.9 * t["accuracy"]["task_token"]]
        # Stricter than the other demos (>= 2 tasks): the C# test expects 4 of 4, so the script must too.
        assert args.smoke or len(good) == len(TASKS), f"tuned prompts reach 90% of the task-token accuracy on only {good}"
        assert args.smoke or all(t["accuracy"]["task_token"] >= 0.95 for t in tasks), "pretraining did not saturate"
        log(f"tuned prompts (every seed) reach >= 90% of the task-token accuracy on: {', '.join(good)}")

        meta = {
            "format": "softprompt-demo/1",
            "generator": "tools/reference/make_demo_llama.py",
            "model_family": "llama",
            "model": "model",
            "vocab": "model/vocab.json",
            "metric": "exact match of greedy decoding: a row counts when every target token is the argmax of "
                      "its teacher-forced logits",
            "row_layout": "[soft prompt (prompt_length vectors), input_ids, target_ids], positions 0.. counting the "
                          "prompt (RoPE); loss = mean cross-entropy over the target tokens of the batch",
            "symbols": list(range(len(lang.SYMBOLS))),
            "special_tokens": {"sep": SEP_ID, "fill": FILL_ID, "eos": EOS_ID},
            "pretraining_sequence": "[<fill>]*k TASK x1..xn <sep> y1..ym <eos>, k in 0..3, n in 3..8",
            "tune_seeds": args.tune_seeds,
            "tasks": tasks,
        }
        with open(os.path.join(tmp, "tasks.json"), "w") as f:
            f.write(lang.compact_json(meta) + "\n")

        acc_rows = "\n".join(
            f"| {t['name']} | {t['accuracy']['task_token']:.3f} | {t['accuracy']['untuned_mean']:.3f} | "
            f"{t['accuracy']['tuned_mean']:.3f} / {t['accuracy']['tuned_min']:.3f} |" for t in tasks)
        with open(os.path.join(tmp, "README.md"), "w") as f:
            f.write(README.format(
                torch=torch.__version__, minutes=max(1, round((time.time() - t_start) / 60)), V=cfg.vocab_size,
                sep=SEP_ID, fill=FILL_ID, eos=EOS_ID, min_n=lang.MIN_N, max_n=lang.MAX_N, max_fill=lang.MAX_FILL,
                P=PROMPT_LENGTH, p_last=PROMPT_LENGTH - 1, init_range=recipe["init_range"], lr=recipe["lr"],
                steps=recipe["steps"], batch=recipe["batch_size"], seeds=args.tune_seeds, acc_table=acc_rows,
                d=cfg.hidden_size, L=cfg.num_hidden_layers, H=cfg.num_attention_heads, Hkv=cfg.num_key_value_heads,
                hd=cfg.head_dim, ff=cfg.intermediate_size, theta=cfg.rope_theta, eps=cfg.rms_norm_eps,
                npos=cfg.max_position_embeddings, plr=args.lr, pwarm=args.warmup, pwd=args.weight_decay,
                psteps=args.steps, pbatch=args.batch))

        os.makedirs(args.out, exist_ok=True)
        for name in ("model", "prompts", "tasks.json", "README.md"):
            dst, src = os.path.join(args.out, name), os.path.join(tmp, name)
            if os.path.isdir(dst):
                shutil.rmtree(dst)
            elif os.path.exists(dst):
                os.remove(dst)
            (shutil.copytree if os.path.isdir(src) else shutil.copyfile)(src, dst)
    total = 0
    for dp, _, fns in sorted(os.walk(args.out)):
        for fn in sorted(fns):
            size = os.path.getsize(os.path.join(dp, fn))
            total += size
            log(f"  {size:8d}  {os.path.relpath(os.path.join(dp, fn), args.out)}")
    log(f"total {total} bytes; {time.time() - t_start:.0f}s")


if __name__ == "__main__":
    main()

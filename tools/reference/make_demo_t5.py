#!/usr/bin/python3
"""Pretrains the tiny T5 behind `softprompt demo --model-family t5` and writes it beside the GPT-2 demo.

The language, the task rows and the batch walk are the GPT-2 demo's (make_demo.py), read from that module so
the two demos cannot drift apart; only the model differs. Pretraining pairs are

    encoder input   [<fill>]*k  TASK  x1 .. xn  <sep>          k in 0..3, n in 3..8
    decoder target  y1 .. ym  <eos>

and the prompt-tuning rows are the GPT-2 demo's own data files, {"input_ids": [x.., <sep>], "target_ids":
[y.., <eos>]}: exactly what the T5 engine reads (input to the encoder after the prompt, targets to the decoder).
A soft prompt of length 4 takes the encoder positions 0..3 where `<fill> <fill> <fill> TASK` sat in
pretraining (relative positions count the prompt), so a tuned prompt can stand in for the task token.

The model is T5 v1.1 style in Hugging Face's layout and semantics (the math is t5_reference.py's, the code
the T5 fixtures are made with): gated-GELU feed-forward, untied lm_head, relative position buckets, no
attention scale. The vocabulary is the GPT-2 demo's 23 tokens plus `<pad>` (id 23), which T5 needs as
pad_token_id and decoder_start_token_id; the data files never contain it.

Metric: exact match of greedy decoding = every target token is the argmax of its teacher-forced logits.
Per task the script measures on the dev rows the task token (a prompt made of the embeddings of
<fill> <fill> <fill> TASK, checked equal to feeding those tokens), untuned prompts, and prompts tuned with
the recorded recipe (only the prompt trainable; batches drawn like the C# BatchSampler) for several seeds.
Everything is seeded; one thread.

Usage: /usr/bin/python3 tools/reference/make_demo_t5.py --out src/SoftPrompt.Cli/Demo/t5
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

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_demo as lang  # noqa: E402  (the GPT-2 demo: language, data rows, sampler, formatting helpers)
import t5_reference  # noqa: E402
from safetensors_io import load_file, save_file  # noqa: E402
from t5_reference import Batch, Config, cross_entropy_mean, ffn_names, forward  # noqa: E402

torch.set_num_threads(1)

TASKS = lang.TASKS
TOKENS = lang.TOKENS + ["<pad>"]
VOCAB = {s: i for i, s in enumerate(TOKENS)}
PAD_ID = VOCAB["<pad>"]
SEP_ID, FILL_ID, EOS_ID, TASK_ID = lang.SEP_ID, lang.FILL_ID, lang.EOS_ID, lang.TASK_ID
PROMPT_LENGTH = lang.PROMPT_LENGTH
assert all(VOCAB[t] == i for i, t in enumerate(lang.TOKENS)), "the GPT-2 demo's ids must stay valid"

# t5_reference builds decoder inputs as [PAD_TOKEN, targets[:-1]] (HF: decoder_start_token_id = pad_token_id).
# This vocabulary's pad is <pad> = 23, not T5's usual 0 (a symbol here), so the module constant follows it.
t5_reference.PAD_TOKEN = PAD_ID

CONFIG = Config(vocab_size=len(TOKENS), d_model=64, d_kv=16, d_ff=128, num_layers=2, num_heads=4, num_decoder_layers=2,
                num_buckets=16, max_distance=32, feed_forward_proj="gated-gelu", tie_word_embeddings=False)


# ----------------------------------------------------------------------------------------------------------
# Pretraining

def init_weights(cfg, seed):
    """Hugging Face's T5 init (initializer_factor 1) with norm weights 1, except lm_head ~ N(0, 1/d) instead of
    N(0, 1): an untied head of std 1 starts with logits of std sqrt(d) and a tiny model trains worse from there."""
    g = torch.Generator().manual_seed(seed)

    def normal(*shape, std):
        return torch.randn(*shape, generator=g) * std

    d, inner, ff, H = cfg.d_model, cfg.inner, cfg.d_ff, cfg.num_heads
    w = {"shared.weight": normal(cfg.vocab_size, d, std=1.0)}

    def attention(prefix, with_bias):
        w[prefix + "q.weight"] = normal(inner, d, std=(d * cfg.d_kv) ** -0.5)
        w[prefix + "k.weight"] = normal(inner, d, std=d ** -0.5)
        w[prefix + "v.weight"] = normal(inner, d, std=d ** -0.5)
        w[prefix + "o.weight"] = normal(d, inner, std=inner ** -0.5)
        if with_bias:
            w[prefix + "relative_attention_bias.weight"] = normal(cfg.num_buckets, H, std=d ** -0.5)

    def ffn(prefix):
        for name in ffn_names(cfg):
            w[prefix + name + ".weight"] = normal(d, ff, std=ff ** -0.5) if name == "wo" else normal(ff, d, std=d ** -0.5)

    for stack, layers in (("encoder", cfg.num_layers), ("decoder", cfg.decoder_layers)):
        for i in range(layers):
            p = f"{stack}.block.{i}.layer."
            attention(p + "0.SelfAttention.", i == 0)
            w[p + "0.layer_norm.weight"] = torch.ones(d)
            if stack == "decoder":
                attention(p + "1.EncDecAttention.", False)
                w[p + "1.layer_norm.weight"] = torch.ones(d)
            f = 2 if stack == "decoder" else 1
            ffn(p + f"{f}.DenseReluDense.")
            w[p + f"{f}.layer_norm.weight"] = torch.ones(d)
        w[f"{stack}.final_layer_norm.weight"] = torch.ones(d)
    w["lm_head.weight"] = normal(cfg.vocab_size, d, std=d ** -0.5)
    return w


def pretrain_batch(rng, size):
    rows = []
    for _ in range(size):
        task = TASKS[rng.randrange(len(TASKS))]
        k = rng.randint(0, lang.MAX_FILL)
        x, y = lang.make_example(task, rng)
        rows.append((0, [FILL_ID] * k + [TASK_ID[task]] + x + [SEP_ID], y + [EOS_ID]))
    return Batch(rows, 0)


def pretrain(cfg, args, log):
    w = init_weights(cfg, args.seed)
    params = list(w.values())
    for p in params:
        p.requires_grad_(True)
    decay = [p for p in params if p.dim() == 2 and p.shape[0] != cfg.num_buckets]
    no_decay = [p for p in params if not (p.dim() == 2 and p.shape[0] != cfg.num_buckets)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": args.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=args.lr, betas=(0.9, 0.98))
    empty = torch.zeros(1, 0, cfg.d_model)
    rng = random.Random(args.seed)
    t0 = time.time()
    avg = None
    for step in range(1, args.steps + 1):
        warm = min(1.0, step / args.warmup)
        frac = (step - 1) / max(1, args.steps - 1)
        lr = args.lr * warm * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac)))
        for gr in opt.param_groups:
            gr["lr"] = lr
        batch = pretrain_batch(rng, args.batch)
        loss = cross_entropy_mean(forward(w, cfg, empty, batch)[2], batch.labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        avg = loss.item() if avg is None else 0.98 * avg + 0.02 * loss.item()
        if step % args.log_every == 0 or step == args.steps:
            log(f"  pretrain step {step:5d}/{args.steps}  loss {avg:.4f}  lr {lr:.2e}  {time.time() - t0:5.1f}s")
    return {k: v.detach().clone().contiguous() for k, v in w.items()}


# ----------------------------------------------------------------------------------------------------------
# Prompt tuning, through t5_reference's Batch/forward: the C# engine's exact layout

def exact_match(w, cfg, prompt, rows, chunk=256):
    """Fraction of rows whose every target token is the argmax of its teacher-forced logits."""
    correct = 0
    with torch.no_grad():
        for i in range(0, len(rows), chunk):
            batch = Batch([(0, inp, tgt) for inp, tgt in rows[i : i + chunk]], prompt.shape[0])
            assert int(batch.decoder_input_ids[0, 0]) == PAD_ID
            pred = forward(w, cfg, prompt[None], batch)[2].argmax(dim=-1)
            ok = (pred == batch.labels) | (batch.labels < 0)
            correct += int(ok.all(dim=1).sum())
    return correct / len(rows)


def token_path_exact_match(w, cfg, task, rows):
    """The same metric feeding the real tokens <fill>*3 TASK x <sep> to the encoder (no prompt vectors)."""
    empty = torch.zeros(1, 0, cfg.d_model)
    head = [FILL_ID] * lang.MAX_FILL + [TASK_ID[task]]
    with torch.no_grad():
        batch = Batch([(0, head + inp, tgt) for inp, tgt in rows], 0)
        pred = forward(w, cfg, empty, batch)[2].argmax(dim=-1)
        ok = (pred == batch.labels) | (batch.labels < 0)
        return int(ok.all(dim=1).sum()) / len(rows)


def init_prompt(w, kind, seed, init_range):
    g = torch.Generator().manual_seed(seed)
    d = w["shared.weight"].shape[1]
    if kind == "uniform":  # Lester et al.'s random-uniform init, in [-init_range, init_range)
        return (torch.rand(PROMPT_LENGTH, d, generator=g) * 2 - 1) * init_range
    if kind == "vocab":  # sampled vocabulary: embeddings of random symbols (never a task token)
        ids = torch.randint(0, len(lang.SYMBOLS), (PROMPT_LENGTH,), generator=g)
        return w["shared.weight"][ids].clone()
    raise ValueError(kind)


def tune(w, cfg, train, recipe, seed):
    prompt = init_prompt(w, recipe["init"], seed, recipe["init_range"]).requires_grad_(True)
    opt = torch.optim.AdamW([prompt], lr=recipe["lr"], betas=tuple(recipe["betas"]), eps=recipe["eps"],
                            weight_decay=recipe["weight_decay"])
    sampler = lang.Sampler(len(train), recipe["batch_size"], seed)
    loss = None
    for _ in range(recipe["steps"]):
        batch = Batch([(0, *train[i]) for i in sampler.next()], PROMPT_LENGTH)
        loss = cross_entropy_mean(forward(w, cfg, prompt[None], batch)[2], batch.labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return prompt.detach(), loss.item()


# ----------------------------------------------------------------------------------------------------------
# Output

RECIPE = {  # what `softprompt demo --model-family t5` runs per task; checked below
    "prompt_length": PROMPT_LENGTH,
    "init": "uniform",
    "init_range": 0.5,
    "optimizer": "adamw",
    "lr": 0.1,
    "schedule": "constant",
    "betas": [0.9, 0.999],
    "eps": 1e-8,
    "weight_decay": 0.0,
    "clip_norm": 0.0,
    "steps": 200,
    "batch_size": 16,
    "shuffle": True,
}


def read_jsonl(path):
    with open(path) as f:
        return [(r["input_ids"], r["target_ids"]) for r in map(json.loads, f)]


def hf_config(cfg):
    c = cfg.to_hf_json()
    c["decoder_start_token_id"] = c["pad_token_id"] = PAD_ID
    c["eos_token_id"] = EOS_ID
    return c


README = """# Demo: a tiny T5 that knows four tasks

The model behind `softprompt demo --model-family t5`. Everything here is made by

    /usr/bin/python3 tools/reference/make_demo_t5.py --out src/SoftPrompt.Cli/Demo/t5

(PyTorch {torch}, CPU, one thread, fixed seeds; {minutes} minutes on one core). Do not edit by hand.

## The language and the data
The GPT-2 demo's (`../README.md`, `tools/reference/make_demo.py`): 16 symbols, `<sep>`, `<fill>`, four task
tokens, `<eos>`, with the same ids, plus `<pad>` ({pad}) which T5 needs as `pad_token_id` and
`decoder_start_token_id` (vocabulary {V}, `model/vocab.json`). Pretraining pairs, n in {min_n}..{max_n} and
k in 0..{max_fill}, task uniform:

    encoder input   [<fill>]*k  TASK  x1 .. xn  <sep>
    decoder target  y1 .. ym  <eos>

The prompt-tuning rows are the GPT-2 demo's own files (`../data/<task>.{{train,dev}}.jsonl`, checked equal to
what make_demo.py generates): `input_ids` = [x1..xn, `<sep>`] goes to the encoder after the soft prompt,
`target_ids` = [y1..ym, `<eos>`] to the decoder (teacher-forced behind `<pad>`). A prompt of length {P}
takes encoder positions 0..{p_last}, where `<fill> <fill> <fill> TASK` sat in pretraining.

Metric: exact match of greedy decoding, i.e. a row counts when every target token is the argmax of its
teacher-forced logits.

Recipe (`tasks.json`, the same for every task): prompt length {P}, init random-uniform in
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
T5 v1.1 style, Hugging Face names (`T5ForConditionalGeneration`), F32: vocab {V}, d_model {d}, d_kv {dkv},
num_heads {H}, d_ff {ff}, gated-gelu, {L} encoder + {L} decoder layers, {nb} relative buckets (max distance
{md}), untied lm_head, layer_norm_epsilon 1e-6, no dropout. Pretrained with AdamW (lr {plr} peak, warmup
{pwarm}, cosine to 10%, betas 0.9/0.98, weight decay {pwd} on matrices, clip 1.0) for {psteps} steps of
{pbatch} pairs; Hugging Face's T5 init with lm_head ~ N(0, 1/d_model).
"""


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True, help="e.g. src/SoftPrompt.Cli/Demo/t5")
    ap.add_argument("--data", default=None, help="the GPT-2 demo's data folder (default: OUT/../data)")
    ap.add_argument("--steps", type=int, default=4000, help="pretraining steps")
    ap.add_argument("--batch", type=int, default=64, help="pretraining batch (pairs)")
    ap.add_argument("--lr", type=float, default=3e-3, help="pretraining peak lr")
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--weight-decay", type=float, default=0.01)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tune-seeds", type=int, default=3, help="prompt-tuning runs per task in the verification")
    ap.add_argument("--tune-steps", type=int, default=None, help="override the recipe's steps (experiments)")
    ap.add_argument("--tune-lr", type=float, default=None, help="override the recipe's lr (experiments)")
    ap.add_argument("--log-every", type=int, default=250)
    ap.add_argument("--smoke", action="store_true", help="do not fail on low accuracies (quick test runs only)")
    args = ap.parse_args()
    t_start = time.time()
    recipe = dict(RECIPE)
    if args.tune_steps is not None:
        recipe["steps"] = args.tune_steps
    if args.tune_lr is not None:
        recipe["lr"] = args.tune_lr
    data_dir = args.data or os.path.join(args.out, "..", "data")

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
    log(f"pretraining T5: vocab {cfg.vocab_size}, d_model {cfg.d_model}, {cfg.num_heads}x{cfg.d_kv} heads, d_ff {cfg.d_ff}, "
        f"{cfg.num_layers}+{cfg.decoder_layers} layers, {cfg.num_buckets} buckets; {args.steps} steps x {args.batch}")
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
            token_prompt = w["shared.weight"][[FILL_ID] * lang.MAX_FILL + [TASK_ID[task]]].clone()
            acc_token = exact_match(w, cfg, token_prompt, dev)
            acc_token_path = token_path_exact_match(w, cfg, task, dev)
            assert acc_token == acc_token_path, (task, acc_token, acc_token_path)
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
                      {"format": "pt", "task": task, "description": "seed-0 tuned prompt of make_demo_t5.py"})
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
        assert args.smoke or len(good) >= 2, f"tuned prompts reach 90% of the task-token accuracy on only {good}"
        assert args.smoke or all(t["accuracy"]["task_token"] >= 0.95 for t in tasks), "pretraining did not saturate"
        log(f"tuned prompts (every seed) reach >= 90% of the task-token accuracy on: {', '.join(good)}")

        meta = {
            "format": "softprompt-demo/1",
            "generator": "tools/reference/make_demo_t5.py",
            "model_family": "t5",
            "model": "model",
            "vocab": "model/vocab.json",
            "metric": "exact match of greedy decoding: a row counts when every target token is the argmax of "
                      "its teacher-forced logits",
            "row_layout": "encoder [soft prompt (prompt_length vectors), input_ids]; decoder [<pad>, target_ids[:-1]] "
                          "predicts target_ids; loss = mean cross-entropy over the target tokens of the batch",
            "symbols": list(range(len(lang.SYMBOLS))),
            "special_tokens": {"sep": SEP_ID, "fill": FILL_ID, "eos": EOS_ID, "pad": PAD_ID},
            "pretraining_pair": "encoder [<fill>]*k TASK x1..xn <sep>, decoder y1..ym <eos>, k in 0..3, n in 3..8",
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
                torch=torch.__version__, minutes=max(1, round((time.time() - t_start) / 60)), pad=PAD_ID,
                V=cfg.vocab_size, min_n=lang.MIN_N, max_n=lang.MAX_N, max_fill=lang.MAX_FILL, P=PROMPT_LENGTH,
                p_last=PROMPT_LENGTH - 1, init_range=recipe["init_range"], lr=recipe["lr"], steps=recipe["steps"],
                batch=recipe["batch_size"], seeds=args.tune_seeds, acc_table=acc_rows, d=cfg.d_model, dkv=cfg.d_kv,
                H=cfg.num_heads, ff=cfg.d_ff, L=cfg.num_layers, nb=cfg.num_buckets, md=cfg.max_distance,
                plr=args.lr, pwarm=args.warmup, pwd=args.weight_decay, psteps=args.steps, pbatch=args.batch))

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

#!/usr/bin/python3
"""Pretrains the tiny demo GPT-2 behind `softprompt demo` and writes it with its prompt-tuning data.

The model is GPT-2 in Hugging Face's layout and semantics (the math is `transformer` from
gpt2_reference.py, so the demo model runs through exactly the code the fixtures are made with). It is
pretrained on a synthetic multi-task language in which a TASK token selects the behaviour:

    [<fill>]*k  TASK  x1 .. xn  <sep>  y1 .. ym  <eos>        k in 0..3, n in 3..8

    <copy>      y = x
    <reverse>   y = x reversed
    <sort>      y = x sorted (symbol order 0 1 .. 9 a .. f)
    <majority>  x holds exactly two distinct symbols, one more often than the other; y = that symbol

The symbols are the 16 hex digits. The pretraining loss is the mean cross-entropy over y1..ym <eos> only.
The prompt-tuning data drops `[<fill>]*k TASK`: rows {"input_ids": [x.., <sep>], "target_ids": [y.., <eos>]}.
A soft prompt of length 4 sits at positions 0..3, exactly where `<fill> <fill> <fill> TASK` sat in
pretraining (k = 3), so a tuned prompt can stand in for the task token.

Metric: exact match of greedy decoding = every target token is the argmax of its teacher-forced logits.
The script measures, per task, on the dev rows: (1) the accuracy with the real task token (a prompt made of
the embeddings of <fill> <fill> <fill> TASK, checked equal to feeding those tokens), (2) the accuracy of the
untuned prompt (the recorded init), (3) the accuracy after prompt tuning with the recorded recipe (only the
prompt trainable; batches drawn like the C# BatchSampler: seeded shuffle per epoch, wrap into the next epoch),
for several seeds. Everything is seeded; one thread.

Usage: /usr/bin/python3 tools/reference/make_demo.py --out src/SoftPrompt.Cli/Demo
"""

import argparse
import json
import math
import os
import random
import re
import shutil
import sys
import tempfile
import time

import torch
import torch.nn.functional as F

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gpt2_reference import Batch, Config, cross_entropy_mean, embed, transformer  # noqa: E402
from safetensors_io import load_file, save_file  # noqa: E402

torch.set_num_threads(1)

# ----------------------------------------------------------------------------------------------------------
# The language

SYMBOLS = list("0123456789abcdef")
SEP, FILL = "<sep>", "<fill>"
TASKS = ["copy", "reverse", "sort", "majority"]
EOS = "<eos>"
TOKENS = SYMBOLS + [SEP, FILL] + [f"<{t}>" for t in TASKS] + [EOS]  # <eos> last: GPT-2's eos = vocab_size-1
VOCAB = {s: i for i, s in enumerate(TOKENS)}
SEP_ID, FILL_ID, EOS_ID = VOCAB[SEP], VOCAB[FILL], VOCAB[EOS]
TASK_ID = {t: VOCAB[f"<{t}>"] for t in TASKS}
MIN_N, MAX_N = 3, 8
MAX_FILL = 3
PROMPT_LENGTH = MAX_FILL + 1

CONFIG = Config(vocab_size=len(TOKENS), n_positions=32, n_embd=64, n_layer=3, n_head=4)


def make_example(task, rng):
    """Returns (x, y) as lists of symbol ids (y without <eos>)."""
    n = rng.randint(MIN_N, MAX_N)
    if task == "majority":
        a, b = rng.sample(range(len(SYMBOLS)), 2)
        ca = rng.randint(n // 2 + 1, n - 1)  # strict majority, the other symbol appears at least once
        x = [a] * ca + [b] * (n - ca)
        rng.shuffle(x)
        return x, [a]
    x = [rng.randrange(len(SYMBOLS)) for _ in range(n)]
    if task == "copy":
        return x, list(x)
    if task == "reverse":
        return x, x[::-1]
    if task == "sort":
        return x, sorted(x)
    raise ValueError(task)


def tuning_row(task, rng):
    x, y = make_example(task, rng)
    return x + [SEP_ID], y + [EOS_ID]


# ----------------------------------------------------------------------------------------------------------
# Pretraining

def init_weights(cfg, seed):
    """GPT-2's init: N(0, 0.02) matrices and embeddings, residual projections / sqrt(2 n_layer), zero biases."""
    g = torch.Generator().manual_seed(seed)

    def normal(*shape, std=0.02):
        return torch.randn(*shape, generator=g) * std

    d, inner = cfg.n_embd, cfg.inner
    proj_std = 0.02 / math.sqrt(2 * cfg.n_layer)
    w = {"wte.weight": normal(cfg.vocab_size, d), "wpe.weight": normal(cfg.n_positions, d, std=0.01)}
    for i in range(cfg.n_layer):
        p = f"h.{i}."
        w[p + "ln_1.weight"], w[p + "ln_1.bias"] = torch.ones(d), torch.zeros(d)
        w[p + "attn.c_attn.weight"], w[p + "attn.c_attn.bias"] = normal(d, 3 * d), torch.zeros(3 * d)
        w[p + "attn.c_proj.weight"], w[p + "attn.c_proj.bias"] = normal(d, d, std=proj_std), torch.zeros(d)
        w[p + "ln_2.weight"], w[p + "ln_2.bias"] = torch.ones(d), torch.zeros(d)
        w[p + "mlp.c_fc.weight"], w[p + "mlp.c_fc.bias"] = normal(d, inner), torch.zeros(inner)
        w[p + "mlp.c_proj.weight"], w[p + "mlp.c_proj.bias"] = normal(inner, d, std=proj_std), torch.zeros(d)
    w["ln_f.weight"], w["ln_f.bias"] = torch.ones(d), torch.zeros(d)
    return w


def pretrain_batch(rng, size):
    """Token ids [B,T] (right-padded with <eos>) and labels [B,T] (-1 except where y / <eos> is predicted)."""
    seqs, starts = [], []
    for _ in range(size):
        task = TASKS[rng.randrange(len(TASKS))]
        k = rng.randint(0, MAX_FILL)
        x, y = make_example(task, rng)
        head = [FILL_ID] * k + [TASK_ID[task]] + x + [SEP_ID]
        seqs.append(head + y + [EOS_ID])
        starts.append(len(head))
    T = max(map(len, seqs))
    tokens = torch.full((size, T), EOS_ID, dtype=torch.int64)
    labels = torch.full((size, T), -1, dtype=torch.int64)
    for b, (s, h) in enumerate(zip(seqs, starts)):
        tokens[b, : len(s)] = torch.tensor(s)
        labels[b, h - 1 : len(s) - 1] = torch.tensor(s[h:])
    return tokens, labels


def lm_logits(w, cfg, tokens):
    T = tokens.shape[1]
    return transformer(w, cfg, w["wte.weight"][tokens] + w["wpe.weight"][:T])[1]


def pretrain(cfg, args, log):
    w = init_weights(cfg, args.seed)
    params = list(w.values())
    for p in params:
        p.requires_grad_(True)
    decay = [p for k, p in w.items() if p.dim() == 2 and k != "wpe.weight"]
    no_decay = [p for k, p in w.items() if not (p.dim() == 2 and k != "wpe.weight")]
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
        tokens, labels = pretrain_batch(rng, args.batch)
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
# Prompt-tuning evaluation (through gpt2_reference's Batch/embed: the C# engine's exact layout)

def exact_match(w, cfg, prompt, rows, chunk=256):
    """Fraction of rows whose every target token is the argmax of its teacher-forced logits."""
    correct = 0
    with torch.no_grad():
        for i in range(0, len(rows), chunk):
            part = rows[i : i + chunk]
            batch = Batch([(0, inp, tgt) for inp, tgt in part], prompt.shape[0])
            logits = transformer(w, cfg, embed(w, prompt[None], batch))[1]
            pred = logits.argmax(dim=-1)
            ok = (pred == batch.labels) | (batch.labels < 0)
            correct += int(ok.all(dim=1).sum())
    return correct / len(rows)


def token_path_exact_match(w, cfg, task, rows):
    """The same metric feeding the real tokens <fill>*3 TASK x <sep> y <eos> (no prompt vectors)."""
    correct = 0
    head = [FILL_ID] * MAX_FILL + [TASK_ID[task]]
    with torch.no_grad():
        for inp, tgt in rows:
            seq = head + inp + tgt
            pred = lm_logits(w, cfg, torch.tensor([seq]))[0].argmax(-1)
            first = len(head) + len(inp) - 1
            correct += int(pred[first : first + len(tgt)].tolist() == tgt)
    return correct / len(rows)


def init_prompt(w, kind, seed, P=PROMPT_LENGTH):
    g = torch.Generator().manual_seed(seed)
    d = w["wte.weight"].shape[1]
    if kind == "uniform":  # Lester et al.'s random-uniform init
        return torch.rand(P, d, generator=g) - 0.5
    if kind == "vocab":  # sampled vocabulary: embeddings of random symbols (never a task token)
        ids = torch.randint(0, len(SYMBOLS), (P,), generator=g)
        return w["wte.weight"][ids].clone()
    raise ValueError(kind)


class Sampler:
    """The C# BatchSampler's walk: a seeded shuffle per epoch, BatchSize rows per step, wrapping epochs."""

    def __init__(self, n, batch, seed):
        self.rng = random.Random(seed)
        self.order = list(range(n))
        self.batch = batch
        self.cursor = 0
        self.rng.shuffle(self.order)

    def next(self):
        out = []
        for _ in range(self.batch):
            if self.cursor == len(self.order):
                self.cursor = 0
                self.rng.shuffle(self.order)
            out.append(self.order[self.cursor])
            self.cursor += 1
        return out


def tune(w, cfg, train, recipe, seed):
    prompt = init_prompt(w, recipe["init"], seed).requires_grad_(True)
    opt = torch.optim.AdamW([prompt], lr=recipe["lr"], betas=(0.9, 0.999), eps=1e-8,
                            weight_decay=recipe["weight_decay"])
    sampler = Sampler(len(train), recipe["batch_size"], seed)
    for _ in range(recipe["steps"]):
        rows = [train[i] for i in sampler.next()]
        batch = Batch([(0, inp, tgt) for inp, tgt in rows], prompt.shape[0])
        loss = cross_entropy_mean(transformer(w, cfg, embed(w, prompt[None], batch))[1], batch.labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return prompt.detach(), loss.item()


# ----------------------------------------------------------------------------------------------------------
# Data files, verification, output

TRAIN_ROWS, DEV_ROWS = 1000, 200
DATA_SEED = 20260
RECIPE = {  # what `softprompt demo` runs per task; checked below
    "prompt_length": PROMPT_LENGTH,
    "init": "uniform",  # random-uniform in [-init_range, init_range)
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
DESCRIPTIONS = {
    "copy": "y = x",
    "reverse": "y = x reversed",
    "sort": "y = x sorted (0 < 1 < .. < 9 < a < .. < f)",
    "majority": "x holds two distinct symbols, one strictly more often; y = that symbol",
}


def make_rows(task):
    """TRAIN_ROWS + DEV_ROWS distinct rows; dev never repeats a train row."""
    rng = random.Random(DATA_SEED + TASKS.index(task))
    seen, rows = set(), []
    while len(rows) < TRAIN_ROWS + DEV_ROWS:
        inp, tgt = tuning_row(task, rng)
        if tuple(inp) not in seen:
            seen.add(tuple(inp))
            rows.append((inp, tgt))
    return rows[:TRAIN_ROWS], rows[TRAIN_ROWS:]


def write_jsonl(path, rows):
    with open(path, "w") as f:
        for inp, tgt in rows:
            f.write(json.dumps({"input_ids": inp, "target_ids": tgt}, separators=(",", ":")) + "\n")


def hf_config(cfg):
    c = cfg.to_hf_json()
    c["bos_token_id"] = c["eos_token_id"] = EOS_ID
    return c


def compact_json(obj):
    """json.dumps(indent=2) with lists of numbers kept on one line."""
    text = json.dumps(obj, indent=2)
    return re.sub(r"\[\s*([-0-9.e,\s]*?)\s*\]", lambda m: "[" + re.sub(r"\s+", " ", m.group(1)) + "]", text)


def show(ids):
    return " ".join(TOKENS[i] for i in ids)


README = """# Demo: a tiny GPT-2 that knows four tasks

The model and data behind `softprompt demo` (`./build.sh demo`). Everything here is made by

    /usr/bin/python3 tools/reference/make_demo.py --out src/SoftPrompt.Cli/Demo

(PyTorch {torch}, CPU, one thread, fixed seeds: the same bytes on every run of one PyTorch build;
5-7 minutes on one core). Do not edit by hand.

## The language
Vocabulary ({V} tokens, `model/vocab.json`): the 16 symbols `0`..`9` `a`..`f` (ids 0-15), `<sep>` ({sep}),
`<fill>` ({fill}), the task tokens {task_tokens}, and `<eos>` ({eos}, GPT-2's `eos_token_id` = vocab_size - 1).
Pretraining sequences, n in {min_n}..{max_n} and k in 0..{max_fill} uniformly, task uniformly:

    [<fill>]*k  TASK  x1 .. xn  <sep>  y1 .. ym  <eos>

{task_table}

The pretraining loss is the cross-entropy over y1..ym `<eos>` only (x is random, so there is nothing to learn
there). `n_positions` is 32; the longest sequence is 3 + 1 + 8 + 1 + 8 + 1 = 22 tokens.

## Prompt tuning
`data/<task>.train.jsonl` ({train} rows) and `data/<task>.dev.jsonl` ({dev} rows, none repeated from train)
drop `[<fill>]*k TASK`: each row is `{{"input_ids": [x1..xn, <sep>], "target_ids": [y1..ym, <eos>]}}`. The
model reads the soft prompt (positions 0..{p_last}), then `input_ids`, then `target_ids`; the loss is on the
targets. A prompt of length {P} sits exactly where `<fill> <fill> <fill> TASK` sat in pretraining, so a tuned
prompt can learn to stand in for the task token; without one the model does not know what to do.

Metric: exact match of greedy decoding, i.e. a row counts when every target token is the argmax of its
teacher-forced logits.

Recipe (`tasks.json`, the same for every task): prompt length {P}, init random-uniform in [-0.5, 0.5),
AdamW (betas 0.9/0.999, eps 1e-8, weight decay 0), constant lr {lr}, {steps} steps of batch {batch},
no clipping, batches drawn by a seeded shuffle per epoch.

## Measured (PyTorch, dev rows)

| task | task token | untuned prompt (mean of {seeds} inits) | tuned prompt (mean / min of {seeds} seeds) |
|---|---|---|---|
{acc_table}

"task token" = the prompt made of the embeddings of `<fill> <fill> <fill> TASK` (checked equal to feeding
those tokens). `prompts/<task>.safetensors` holds the seed-0 tuned prompt (`prompt_embeddings` [{P}, {d}] F32);
its dev accuracy is `accuracy.reference_prompt` in `tasks.json`.

## Model (`model/`)
GPT-2, Hugging Face layout and names without the `transformer.` prefix, F32, tied LM head: vocab {V},
n_positions {npos}, n_embd {d}, n_layer {L}, n_head {H}, n_inner 4·n_embd, gelu_new, layer_norm_epsilon 1e-5.
Pretrained with AdamW (lr {plr} peak, warmup {pwarm}, cosine to 10%, betas 0.9/0.98, weight decay {pwd} on
matrices, clip 1.0) for {psteps} steps of {pbatch} sequences; init N(0, 0.02) (residual projections
/ sqrt(2·n_layer)).
"""


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True, help="e.g. src/SoftPrompt.Cli/Demo")
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

    def log(msg):
        print(msg, flush=True)

    cfg = CONFIG
    log(f"pretraining: vocab {cfg.vocab_size}, n_embd {cfg.n_embd}, n_layer {cfg.n_layer}, n_head {cfg.n_head}, "
        f"{args.steps} steps x {args.batch}")
    w = pretrain(cfg, args, log)

    tasks = []
    with tempfile.TemporaryDirectory() as tmp:
        for sub in ("model", "data", "prompts"):
            os.makedirs(os.path.join(tmp, sub))
        save_file(w, os.path.join(tmp, "model", "model.safetensors"), {"format": "pt"})
        w, _ = load_file(os.path.join(tmp, "model", "model.safetensors"))  # verify what was written
        with open(os.path.join(tmp, "model", "config.json"), "w") as f:
            json.dump(hf_config(cfg), f, indent=2, sort_keys=True)
            f.write("\n")
        with open(os.path.join(tmp, "model", "vocab.json"), "w") as f:
            json.dump(VOCAB, f, indent=2, ensure_ascii=False)
            f.write("\n")

        log(f"verifying (dev exact match; recipe: {RECIPE['init']} init, AdamW lr {RECIPE['lr']}, "
            f"{RECIPE['steps']} steps x {RECIPE['batch_size']}, {args.tune_seeds} seeds):")
        for task in TASKS:
            t0 = time.time()
            train, dev = make_rows(task)
            write_jsonl(os.path.join(tmp, "data", f"{task}.train.jsonl"), train)
            write_jsonl(os.path.join(tmp, "data", f"{task}.dev.jsonl"), dev)
            # (1) the real task token, as a prompt and as tokens
            token_prompt = w["wte.weight"][[FILL_ID] * MAX_FILL + [TASK_ID[task]]].clone()
            acc_token = exact_match(w, cfg, token_prompt, dev)
            acc_token_path = token_path_exact_match(w, cfg, task, dev)
            assert acc_token == acc_token_path, (task, acc_token, acc_token_path)
            # (2) untuned prompts, (3) tuned prompts
            seeds = range(args.tune_seeds)
            untuned = [exact_match(w, cfg, init_prompt(w, RECIPE["init"], s), dev) for s in seeds]
            untuned_vocab = [exact_match(w, cfg, init_prompt(w, "vocab", s), dev) for s in seeds]
            tuned, losses, prompts = [], [], []
            for s in seeds:
                prompt, loss = tune(w, cfg, train, RECIPE, s)
                tuned.append(exact_match(w, cfg, prompt, dev))
                losses.append(loss)
                prompts.append(prompt)
            save_file({"prompt_embeddings": prompts[0]}, os.path.join(tmp, "prompts", f"{task}.safetensors"),
                      {"format": "pt", "task": task, "description": "seed-0 tuned prompt of make_demo.py"})
            reloaded, _ = load_file(os.path.join(tmp, "prompts", f"{task}.safetensors"))
            acc_ref = exact_match(w, cfg, reloaded["prompt_embeddings"], dev)
            log(f"  {task:9s} task token {acc_token:.3f} | untuned {sum(untuned) / len(untuned):.3f} "
                f"(vocab init {sum(untuned_vocab) / len(untuned_vocab):.3f}) | tuned "
                + " ".join(f"{a:.3f}" for a in tuned) + " (last batch loss " + " ".join(f"{l:.4f}" for l in losses)
                + f") | {time.time() - t0:.1f}s")
            r = lambda v: round(v, 4)  # noqa: E731
            tasks.append({
                "name": task,
                "description": DESCRIPTIONS[task],
                "task_token": f"<{task}>",
                "task_token_id": TASK_ID[task],
                "filler_id": FILL_ID,
                "sep_id": SEP_ID,
                "eos_id": EOS_ID,
                "train": f"data/{task}.train.jsonl",
                "dev": f"data/{task}.dev.jsonl",
                "train_rows": len(train),
                "dev_rows": len(dev),
                "example": {"input": show(dev[0][0]), "target": show(dev[0][1])},
                "recipe": dict(RECIPE),
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
            "generator": "tools/reference/make_demo.py",
            "model": "model",
            "vocab": "model/vocab.json",
            "metric": "exact match of greedy decoding: a row counts when every target token is the argmax of "
                      "its teacher-forced logits",
            "row_layout": "[soft prompt (prompt_length vectors), input_ids, target_ids]; loss = mean cross-entropy "
                          "over the target tokens of the batch",
            "symbols": list(range(len(SYMBOLS))),
            "special_tokens": {"sep": SEP_ID, "fill": FILL_ID, "eos": EOS_ID},
            "pretraining_sequence": "[<fill>]*k TASK x1..xn <sep> y1..ym <eos>, k in 0..3, n in 3..8",
            "tune_seeds": args.tune_seeds,
            "tasks": tasks,
        }
        with open(os.path.join(tmp, "tasks.json"), "w") as f:
            f.write(compact_json(meta) + "\n")

        acc_rows = "\n".join(
            f"| {t['name']} | {t['accuracy']['task_token']:.3f} | {t['accuracy']['untuned_mean']:.3f} | "
            f"{t['accuracy']['tuned_mean']:.3f} / {t['accuracy']['tuned_min']:.3f} |" for t in tasks)
        task_rows = "\n".join(
            f"- `<{t}>` ({TASK_ID[t]}): {DESCRIPTIONS[t]}; e.g. `{tasks[i]['example']['input']}` "
            f"-> `{tasks[i]['example']['target']}`" for i, t in enumerate(TASKS))
        with open(os.path.join(tmp, "README.md"), "w") as f:
            f.write(README.format(
                torch=torch.__version__, V=cfg.vocab_size, sep=SEP_ID, fill=FILL_ID, eos=EOS_ID,
                task_tokens=", ".join(f"`<{t}>` ({TASK_ID[t]})" for t in TASKS), min_n=MIN_N, max_n=MAX_N,
                max_fill=MAX_FILL, task_table=task_rows, train=TRAIN_ROWS, dev=DEV_ROWS, p_last=PROMPT_LENGTH - 1,
                P=PROMPT_LENGTH, lr=RECIPE["lr"], steps=RECIPE["steps"], batch=RECIPE["batch_size"],
                seeds=args.tune_seeds, acc_table=acc_rows, d=cfg.n_embd, npos=cfg.n_positions, L=cfg.n_layer,
                H=cfg.n_head, plr=args.lr, pwarm=args.warmup, pwd=args.weight_decay, psteps=args.steps,
                pbatch=args.batch))

        os.makedirs(args.out, exist_ok=True)
        for name in ("model", "data", "prompts", "tasks.json", "README.md"):
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

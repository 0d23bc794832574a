#!/usr/bin/python3
"""Trains the small DiffusionVL in two stages and exports it in the release checkpoint layout.

  ar      autoregressive pre-training: causal attention, next-token loss on the answer
  bd      translation into a block-diffusion model: the BD3-LM objective (clean + noisy copy, block-diffusion
          attention mask, per-block mask rate, loss on masked positions), initialised from the AR weights
  eval    exact-match accuracy of a stage on the validation or test split (PyTorch reference decoding)
  export  writes config.json, safetensors, tokenizer.json, ... as DiffusionVL releases lay them out

See tools/train/README.md. Everything is seeded; runs on CPU.
"""
import argparse
import json
import math
import os
import random
import shutil
import struct
import time

import numpy as np
import torch
import torch.nn.functional as F

import data as D
from model import DiffusionVL, TextDims, VisionDims

NEG = float("-inf")


def dims(meta):
    t = TextDims(vocab_size=meta["maskId"] + 1)  # MASK is the row right after the tokenizer's ids
    v = VisionDims(hidden_size=128, num_heads=4, intermediate_size=256, out_hidden_size=t.hidden_size)
    v.fullatt_block_indexes = list(range(v.depth))
    return t, v


def seed_all(seed):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def features(model, split, img_idx):
    patches, gh, gw = D.patchify(split.images[img_idx])
    return model.encode_images(torch.from_numpy(patches), gh, gw)


def pad_batch(model, seqs):
    """seqs: list of (embeds [S,H], positions [S], allowed [S,S] bool) -> batched embeds, positions, additive mask."""
    b = len(seqs)
    s_max = max(e.shape[0] for e, _, _ in seqs)
    h = model.t.hidden_size
    emb = torch.zeros(b, s_max, h)
    pos = torch.zeros(b, s_max, dtype=torch.long)
    allowed = torch.eye(s_max, dtype=torch.bool).repeat(b, 1, 1)  # padded rows see themselves only
    for i, (e, p, a) in enumerate(seqs):
        n = e.shape[0]
        emb[i, :n] = e
        pos[i, :n] = p
        allowed[i, :n, :n] = a
    mask = torch.zeros(b, 1, s_max, s_max).masked_fill(~allowed[:, None], NEG)
    return emb, pos, mask


def causal(n):
    return torch.ones(n, n, dtype=torch.bool).tril()


def block_causal(n, block):
    blk = torch.arange(n) // block
    return blk[None, :] <= blk[:, None]


# ----------------------------------------------------------------------------- losses


def ar_loss(model, rows, feats, meta):
    seqs, labels = [], []
    for e, ids, L in D.assemble(model, rows, feats, [r["answer"] for r in rows], meta["imagePlaceholder"]):
        n = e.shape[0]
        seqs.append((e, torch.arange(n), causal(n)))
        lab = torch.full((n,), -100, dtype=torch.long)
        lab[L - 1 : n - 1] = ids[L:]  # position j predicts the token at j+1
        labels.append(lab)
    emb, pos, mask = pad_batch(model, seqs)
    lab = torch.full(emb.shape[:2], -100, dtype=torch.long)
    for i, l in enumerate(labels):
        lab[i, : l.shape[0]] = l
    hidden = model.decode(emb, pos, mask)
    sel = lab != -100
    return F.cross_entropy(model.lm_head(hidden[sel]), lab[sel])


def bd_loss(model, rows, feats, meta, block, rng, t_lo, t_hi):
    """BD3-LM objective. Sequence = clean copy x (block-causal) followed by a noisy copy of the blocks that hold
    answer positions: a noisy block sees earlier clean blocks and itself (bidirectionally), never later blocks or
    other noisy blocks. Each such block draws a mask rate t ~ U[t_lo, t_hi]; answer positions are masked with
    probability t (prompt positions never are); the loss is cross-entropy at masked positions, predicting the clean
    token at the same position."""
    eos, mask_id = meta["special"]["imEnd"], meta["maskId"]
    answers = []
    for r in rows:
        # bd3lm_block_aligned_eos: the answer is padded with EOS up to the next block boundary of the whole sequence.
        n_prompt = len(r["prompt"]) - 1 + feats.shape[1]
        total = math.ceil((n_prompt + len(r["answer"])) / block) * block
        answers.append(r["answer"] + [eos] * (total - n_prompt - len(r["answer"])))
    mask_row = model.embed_tokens.weight[mask_id]
    seqs, targets = [], []
    for e, ids, L in D.assemble(model, rows, feats, answers, meta["imagePlaceholder"]):
        T = e.shape[0]
        n0 = (L // block) * block
        noisy = e[n0:].clone()
        masked = torch.zeros(T - n0, dtype=torch.bool)
        for b0 in range(n0, T, block):
            lo = max(b0, L)
            t = rng.uniform(t_lo, t_hi)
            m = torch.from_numpy(rng.random_sample(b0 + block - lo) < t)
            if not m.any():
                m[rng.randint(len(m))] = True
            masked[lo - n0 : b0 + block - n0] = m
        noisy = torch.where(masked[:, None], mask_row[None, :].expand_as(noisy), noisy)
        blk = torch.cat([torch.arange(T) // block, torch.arange(n0, T) // block])
        is_noisy = torch.cat([torch.zeros(T, dtype=torch.bool), torch.ones(T - n0, dtype=torch.bool)])
        q_b, k_b = blk[:, None], blk[None, :]
        q_n, k_n = is_noisy[:, None], is_noisy[None, :]
        allowed = ((~q_n) & (~k_n) & (k_b <= q_b)) | (q_n & (~k_n) & (k_b < q_b)) | (q_n & k_n & (k_b == q_b))
        pos = torch.cat([torch.arange(T), torch.arange(n0, T)])
        seqs.append((torch.cat([e, noisy]), pos, allowed))
        tgt = torch.full((T + T - n0,), -100, dtype=torch.long)
        tgt[T:][masked] = ids[n0:][masked]
        targets.append(tgt)
    emb, pos, mask = pad_batch(model, seqs)
    lab = torch.full(emb.shape[:2], -100, dtype=torch.long)
    for i, l in enumerate(targets):
        lab[i, : l.shape[0]] = l
    hidden = model.decode(emb, pos, mask)
    sel = lab != -100
    # Unweighted mean over masked tokens (not BD3-LM's 1/t NELBO weight): we optimise exact-match answers, not a
    # likelihood bound, and with t clipped to [t_lo, 1] the weight would only vary by 1/t_lo anyway.
    return F.cross_entropy(model.lm_head(hidden[sel]), lab[sel])


# ----------------------------------------------------------------------------- reference decoding (PyTorch)


@torch.no_grad()
def ar_generate(model, row, feat, meta, max_new=12):
    eos = meta["special"]["imEnd"]
    gen = []
    for _ in range(max_new):
        e, _, _ = D.assemble(model, [row], feat[None], [gen], meta["imagePlaceholder"])[0]
        n = e.shape[0]
        emb, pos, mask = pad_batch(model, [(e, torch.arange(n), causal(n))])
        nxt = int(model.lm_head(model.decode(emb, pos, mask)[0, -1]).argmax())
        gen.append(nxt)
        if nxt == eos:
            break
    return gen, len(gen)


@torch.no_grad()
def bd_generate(model, row, feat, meta, block, steps=None, strategy="static", threshold=0.85, gen_len=16):
    """generate_with_bd3lm without a KV cache (recomputing committed blocks block-causally is equivalent)."""
    steps = steps or block
    eos, mask_id = meta["special"]["imEnd"], meta["maskId"]
    e, _, L = D.assemble(model, [row], feat[None], [[]], meta["imagePlaceholder"])[0]
    nb = math.ceil((L + gen_len) / block)
    T = nb * block
    x = model.embed_tokens.weight[mask_id].repeat(T, 1)
    x[:L] = e
    tok = [mask_id] * T
    sched = [block // steps + (1 if s < block % steps else 0) for s in range(steps + 1)]
    forwards = 0
    for b in range(L // block, nb):
        s0, s1 = b * block, (b + 1) * block
        for s in range(steps + 1):
            masked = [i for i in range(max(s0, L), s1) if tok[i] == mask_id]
            if not masked:
                break
            emb, pos, mask = pad_batch(model, [(x[:s1], torch.arange(s1), block_causal(s1, block))])
            probs = torch.softmax(model.lm_head(model.decode(emb, pos, mask)[0, s0:s1]).float(), dim=-1)
            forwards += 1
            conf, x0 = probs.max(dim=-1)
            cand = sorted(masked, key=lambda i: (-float(conf[i - s0]), i))
            k = min(sched[s], len(masked))
            pick = cand[:k]
            if strategy == "dynamic":
                hi = [i for i in masked if float(conf[i - s0]) > threshold]
                if len(hi) >= sched[s]:
                    pick = hi
            for i in pick:
                tok[i] = int(x0[i - s0])
                x[i] = model.embed_tokens.weight[tok[i]]
        if eos in tok[max(L, s0) : s1]:
            break
    return tok[L : L + gen_len], forwards


def answer_ids(gen, eos):
    return gen[: gen.index(eos)] if eos in gen else gen


def evaluate(model, split, meta, mode, block, limit=None, **kw):
    model.eval()
    eos = meta["special"]["imEnd"]
    rows = split.rows[:limit] if limit else split.rows
    per_type = {}
    correct = 0
    forwards = 0
    for r in rows:
        feat = features(model, split, [r["img"]])[0]
        if mode == "ar":
            gen, f = ar_generate(model, r, feat, meta)
        else:
            gen, f = bd_generate(model, r, feat, meta, block, **kw)
        forwards += f
        ok = answer_ids(gen, eos) == r["answer"][:-1]
        correct += ok
        c, n = per_type.get(r["type"], (0, 0))
        per_type[r["type"]] = (c + ok, n + 1)
    model.train()
    return correct / len(rows), {k: round(c / n, 3) for k, (c, n) in sorted(per_type.items())}, forwards / len(rows)


# ----------------------------------------------------------------------------- training loop


def train(args, stage):
    meta, splits = D.load(args.data)
    D.check_against_engine(args.data, meta, splits["val"])
    seed_all(args.seed)
    t, v = dims(meta)
    model = DiffusionVL(t, v)
    if args.init:
        model.load_state_dict(torch.load(args.init))
    n_params = sum(p.numel() for p in model.parameters())
    print(f"{stage}: {n_params / 1e6:.2f} M parameters, text {t}, vision {v}", flush=True)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.98), weight_decay=0.01)
    rng = np.random.RandomState(args.seed)
    train_rows = splits["train"].rows
    # Batches are whole scenes with all their questions: the image is encoded once for several questions, and
    # different answers about the same picture force the decoder to read the question.
    by_image = {}
    for r in train_rows:
        by_image.setdefault(r["img"], []).append(r)
    images = sorted(by_image)
    t0 = time.time()
    running = None
    for step in range(args.steps):
        warm = min(1.0, (step + 1) / args.warmup)
        lr = args.lr * warm * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * step / args.steps)))
        for g in opt.param_groups:
            g["lr"] = lr
        picked = [images[i] for i in rng.randint(len(images), size=args.scenes)]
        batch = [r for img in picked for r in by_image[img]]
        scene_feats = features(model, splits["train"], picked)
        feats = torch.cat([scene_feats[k : k + 1].expand(len(by_image[img]), -1, -1) for k, img in enumerate(picked)])
        if stage == "ar":
            loss = ar_loss(model, batch, feats, meta)
        else:
            loss = bd_loss(model, batch, feats, meta, args.block, rng, args.t_lo, args.t_hi)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        running = loss.item() if running is None else 0.95 * running + 0.05 * loss.item()
        if (step + 1) % args.log_every == 0 or step + 1 == args.steps:
            print(f"step {step + 1}/{args.steps} loss {running:.4f} lr {lr:.2e} {time.time() - t0:.0f}s", flush=True)
        if args.eval_every and (step + 1) % args.eval_every == 0:
            torch.save(model.state_dict(), args.out)
            acc, per, _ = evaluate(model, splits["val"], meta, stage, args.block, limit=args.eval_limit)
            print(f"  val exact match {acc:.3f} {per}", flush=True)
    torch.save(model.state_dict(), args.out)
    print(f"{stage}: done in {time.time() - t0:.0f}s -> {args.out}", flush=True)


# ----------------------------------------------------------------------------- export


def save_safetensors(path, tensors):
    header, blobs, off = {}, [], 0
    for name in sorted(tensors):
        b = tensors[name].detach().contiguous().float().numpy().astype("<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(tensors[name].shape), "data_offsets": [off, off + len(b)]}
        off += len(b)
        blobs.append(b)
    header["__metadata__"] = {"format": "pt"}
    hb = json.dumps(header, separators=(",", ":"), sort_keys=True).encode()
    hb += b" " * ((8 - len(hb) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hb)))
        f.write(hb)
        for b in blobs:
            f.write(b)


def export(args):
    meta, _ = D.load(args.data)
    t, v = dims(meta)
    model = DiffusionVL(t, v)
    model.load_state_dict(torch.load(args.ckpt))
    sd = model.state_dict()
    os.makedirs(args.out, exist_ok=True)
    text = {("model." + k if not k.startswith("lm_head") else k): w for k, w in sd.items()
            if k.startswith(("embed_tokens", "layers.", "norm.", "lm_head"))}
    vision = {k[len("vision_tower."):]: w for k, w in sd.items() if k.startswith("vision_tower.")}
    proj = {k[len("mm_projector."):]: w for k, w in sd.items() if k.startswith("mm_projector.")}
    save_safetensors(os.path.join(args.out, "model.safetensors"), text)
    save_safetensors(os.path.join(args.out, "vision_tower.safetensors"), vision)
    save_safetensors(os.path.join(args.out, "projector.safetensors"), proj)
    sp = meta["special"]
    diffusion = args.mode == "bd"
    text_cfg = {
        "model_type": "qwen2_5_vl_text",
        "vocab_size": t.vocab_size,
        "hidden_size": t.hidden_size,
        "intermediate_size": t.intermediate_size,
        "num_hidden_layers": t.num_hidden_layers,
        "num_attention_heads": t.num_attention_heads,
        "num_key_value_heads": t.num_key_value_heads,
        "hidden_act": "silu",
        "max_position_embeddings": 4096,
        "rms_norm_eps": t.rms_norm_eps,
        "rope_theta": t.rope_theta,
        "rope_scaling": {"type": "mrope", "mrope_section": mrope_section(t.head_dim)},
        "tie_word_embeddings": False,
        "bos_token_id": sp["endoftext"],
        "eos_token_id": sp["imEnd"],
        "pad_token_id": sp["endoftext"],
        "torch_dtype": "float32",
    }
    vision_cfg = {
        "model_type": "qwen2_5_vl",
        "depth": v.depth,
        "hidden_size": v.hidden_size,
        "hidden_act": "silu",
        "intermediate_size": v.intermediate_size,
        "num_heads": v.num_heads,
        "in_channels": v.in_channels,
        "patch_size": v.patch_size,
        "spatial_merge_size": v.spatial_merge_size,
        "temporal_patch_size": v.temporal_patch_size,
        "tokens_per_second": 2,
        "window_size": v.window_size,
        "out_hidden_size": v.out_hidden_size,
        "fullatt_block_indexes": v.fullatt_block_indexes,
        "torch_dtype": "float32",
    }
    cfg = {
        "architectures": ["DiffusionVLQwenVLForCausalLM"],
        "model_type": "diffusionvl_qwenvl",
        "text_config": text_cfg,
        "vision_config": vision_cfg,
        "enable_bd3lm": diffusion,
        # The AR model is exported as the B = 1 special case (one token per forward).
        "bd3lm_block_size": args.block if diffusion else 1,
        "bd3lm_block_aligned_eos": diffusion,
        "mask_token_id": meta["maskId"],
        "eos_token_id": sp["imEnd"],
        "pad_token_id": sp["endoftext"],
        "bos_token_id": sp["endoftext"],
        "image_token_id": None,
        "tie_word_embeddings": False,
        "torch_dtype": "float32",
        "mm_vision_tower": "synthetic-diffusionvl-qwenvl",
        "mm_projector_type": "qwen_merger",
        "mm_hidden_size": v.hidden_size,
        "mm_patch_merge_type": "flat",
        "image_aspect_ratio": "pad",
        "min_pixels": meta["minPixels"],
        "max_pixels": meta["maxPixels"],
        "tokenizer_model_max_length": 4096,
    }
    for k, val in text_cfg.items():
        if k != "model_type" and k not in cfg:
            cfg[k] = val
    write_json(os.path.join(args.out, "config.json"), cfg)
    write_json(os.path.join(args.out, "vision_config.json"), vision_cfg)
    write_json(os.path.join(args.out, "preprocessor_config.json"), {
        "min_pixels": meta["minPixels"],
        "max_pixels": meta["maxPixels"],
        "patch_size": v.patch_size,
        "temporal_patch_size": v.temporal_patch_size,
        "merge_size": v.spatial_merge_size,
        "image_mean": meta["mean"],
        "image_std": meta["std"],
        "image_processor_type": "Qwen2VLImageProcessor",
    })
    shutil.copyfile(os.path.join(args.data, "tokenizer.json"), os.path.join(args.out, "tokenizer.json"))
    print(f"exported {args.mode} checkpoint to {args.out}")


def mrope_section(head_dim):
    half = head_dim // 2
    a = half // 4
    b = (half - a) // 2
    return [a, b, half - a - b]


def write_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=True)
        f.write("\n")


def main():
    torch.set_num_threads(int(os.environ.get("TRAIN_THREADS", "1")))
    ap = argparse.ArgumentParser()
    ap.add_argument("stage", choices=["ar", "bd", "eval", "export"])
    ap.add_argument("--data", required=True)
    ap.add_argument("--out")
    ap.add_argument("--init")
    ap.add_argument("--ckpt")
    ap.add_argument("--mode", choices=["ar", "bd"], default="bd")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--scenes", type=int, default=10, help="scenes per batch (all their questions are used)")
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--block", type=int, default=8)
    ap.add_argument("--t-lo", type=float, default=0.3)
    ap.add_argument("--t-hi", type=float, default=1.0)
    ap.add_argument("--log-every", type=int, default=25)
    ap.add_argument("--eval-every", type=int, default=0)
    ap.add_argument("--eval-limit", type=int, default=200)
    ap.add_argument("--split", default="val")
    ap.add_argument("--strategy", default="static")
    ap.add_argument("--threshold", type=float, default=0.85)
    args = ap.parse_args()
    if args.stage in ("ar", "bd"):
        train(args, args.stage)
    elif args.stage == "export":
        export(args)
    else:
        meta, splits = D.load(args.data)
        t, v = dims(meta)
        model = DiffusionVL(t, v)
        model.load_state_dict(torch.load(args.ckpt))
        kw = {} if args.mode == "ar" else {"strategy": args.strategy, "threshold": args.threshold}
        t0 = time.time()
        acc, per, fw = evaluate(model, splits[args.split], meta, args.mode, args.block, limit=args.eval_limit, **kw)
        print(json.dumps({"mode": args.mode, "split": args.split, "accuracy": acc, "per_type": per,
                          "forwards_per_item": fw, "seconds": round(time.time() - t0, 1)}))


if __name__ == "__main__":
    main()

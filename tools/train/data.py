"""Reads the dataset written by make_dataset.js and turns rows into model inputs (pixels normalised exactly as the
engine's preprocessing does; prompt ids already built by the engine's template and tokenizer)."""
import json
import os

import numpy as np
import torch

PATCH, TEMPORAL, MERGE = 14, 2, 2


class Split:
    def __init__(self, root, name, size):
        raw = np.fromfile(os.path.join(root, f"{name}.rgb"), dtype=np.uint8)
        self.images = raw.reshape(-1, size, size, 3)
        with open(os.path.join(root, f"{name}.jsonl")) as f:
            self.rows = [json.loads(line) for line in f if line.strip()]


def load(root):
    with open(os.path.join(root, "meta.json")) as f:
        meta = json.load(f)
    set_normalisation(meta["mean"], meta["std"])
    splits = {n: Split(root, n, meta["imageSize"]) for n in ("train", "val", "test")}
    return meta, splits


MEAN = STD = None


def set_normalisation(mean, std):
    """The dataset's image_mean / image_std, cast to float32 first as the processor does."""
    global MEAN, STD
    MEAN = np.array(mean, dtype=np.float32)
    STD = np.array(std, dtype=np.float32)


def patchify(images):
    """uint8 [B, H, W, 3] -> float32 [B, N, 3*T*P*P]: rescale (float64 product, then float32), normalise in float32,
    rows ordered by 2x2 merge unit (raster) then inside the unit, columns (c, t, py, px)."""
    x = (images.astype(np.float64) * (1 / 255)).astype(np.float32)
    x = (x - MEAN) / STD
    b, h, w, _ = x.shape
    gh, gw = h // PATCH, w // PATCH
    x = x.transpose(0, 3, 1, 2)  # b, c, h, w
    x = x.reshape(b, 3, gh // MERGE, MERGE, PATCH, gw // MERGE, MERGE, PATCH)
    x = x.transpose(0, 2, 5, 3, 6, 1, 4, 7)  # b, bh, bw, mh, mw, c, py, px
    x = np.repeat(x[:, :, :, :, :, :, None], TEMPORAL, axis=6)  # b, bh, bw, mh, mw, c, t, py, px
    return np.ascontiguousarray(x.reshape(b, gh * gw, 3 * TEMPORAL * PATCH * PATCH)), gh, gw


def check_against_engine(root, meta, val):
    """The engine's own preprocessing of the first validation images must equal ours bit for bit."""
    n = meta["check"]["images"]
    ours, _, _ = patchify(val.images[:n])
    theirs = np.fromfile(os.path.join(root, "check.f32"), dtype=np.float32).reshape(ours.shape)
    if not np.array_equal(ours, theirs):
        raise SystemExit(f"pixel mismatch vs engine preprocessing: max |diff| {np.abs(ours - theirs).max()}")


def assemble(model, rows, feats, answers, placeholder):
    """Per row: prompt ids (one image placeholder) followed by `answers[i]` ids -> (embeds [S,H], ids [S] with -1 at
    image rows, prompt length L)."""
    out = []
    emb = model.embed_tokens
    for row, f, ans in zip(rows, feats, answers):
        p = row["prompt"]
        k = p.index(placeholder)
        before = torch.tensor(p[:k], dtype=torch.long)
        after = torch.tensor(p[k + 1:] + ans, dtype=torch.long)
        e = torch.cat([emb(before), f, emb(after)], dim=0)
        ids = torch.cat([before, torch.full((f.shape[0],), -1, dtype=torch.long), after])
        out.append((e, ids, k + f.shape[0] + len(p) - k - 1))
    return out

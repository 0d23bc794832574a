#!/usr/bin/python3
"""Prints PyTorch reference generations for the first validation rows as JSON lines, for comparison with the
TypeScript engine on the converted model (see parity.js)."""
import argparse
import json
import os

import torch

import data as D
import train as T
from model import DiffusionVL


def main():
    torch.set_num_threads(int(os.environ.get("TRAIN_THREADS", "1")))
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--ckpt", required=True)
    ap.add_argument("--mode", choices=["ar", "bd"], default="bd")
    ap.add_argument("--count", type=int, default=8)
    ap.add_argument("--block", type=int, default=8)
    ap.add_argument("--gen-len", type=int, default=16)
    args = ap.parse_args()
    meta, splits = D.load(args.data)
    t, v = T.dims(meta)
    model = DiffusionVL(t, v)
    model.load_state_dict(torch.load(args.ckpt))
    model.eval()
    val = splits["val"]
    for i, row in enumerate(val.rows[: args.count]):
        feat = T.features(model, val, [row["img"]])[0]
        if args.mode == "ar":
            ids, _ = T.ar_generate(model, row, feat, meta)
        else:
            ids, _ = T.bd_generate(model, row, feat, meta, args.block, gen_len=args.gen_len)
        print(json.dumps({"index": i, "ids": ids}))



def dump_hidden(data, ckpt, out_prefix, block=8):
    """Writes float32 image features and block-causal prompt hidden states of validation row 0 (parity.js --hidden)."""
    meta, splits = D.load(data)
    t, v = T.dims(meta)
    model = DiffusionVL(t, v)
    model.load_state_dict(torch.load(ckpt))
    model.eval()
    val = splits["val"]
    row = val.rows[0]
    with torch.no_grad():
        feat = T.features(model, val, [row["img"]])[0]
        e, _, L = D.assemble(model, [row], feat[None], [[]], meta["imagePlaceholder"])[0]
        emb, pos, mask = T.pad_batch(model, [(e, torch.arange(L), T.block_causal(L, block))])
        hidden = model.decode(emb, pos, mask)[0]
        logits = model.lm_head(hidden)
    feat.numpy().astype("<f4").tofile(out_prefix + ".features.f32")
    hidden.numpy().astype("<f4").tofile(out_prefix + ".hidden.f32")
    logits.numpy().astype("<f4").tofile(out_prefix + ".logits.f32")


if __name__ == "__main__":
    import sys
    if len(sys.argv) > 1 and sys.argv[1] == "--hidden":
        dump_hidden(sys.argv[2], sys.argv[3], sys.argv[4])
    else:
        main()

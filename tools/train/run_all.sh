#!/usr/bin/env bash
# Rebuilds the default model from scratch: dataset (TypeScript generator) -> AR training -> block-diffusion
# translation -> export in the release layout -> conversion with the project's converter into models/default
# (block diffusion) and models/default/ar (the AR baseline). CPU only, fixed seeds.
# Usage: tools/train/run_all.sh [WORK_DIR]     (needs python3-torch and libopenblas0-pthread from Debian)
set -euo pipefail
cd "$(dirname "$0")/../.."
WORK=${1:-.cache/train}
PY=${PYTHON:-/usr/bin/python3}
AR_STEPS=${AR_STEPS:-3000}
AR2_STEPS=${AR2_STEPS:-1500}
BD_STEPS=${BD_STEPS:-1500}
BD2_STEPS=${BD2_STEPS:-2000}
BD3_STEPS=${BD3_STEPS:-1500}
mkdir -p "$WORK"
npx tsc -p tsconfig.json >/dev/null || true   # emits even when other parts of the tree have type errors
node scripts/bundle.mjs
t0=$(date +%s)
node tools/train/make_dataset.js "$WORK/data"
# AR: a first cosine cycle at lr 2e-3, then a second, shorter one at 1e-3 from its weights (the first cycle's
# accuracy was still rising when its learning rate reached the floor).
"$PY" tools/train/train.py ar --data "$WORK/data" --out "$WORK/ar1.pt" --steps "$AR_STEPS" --eval-every 500 --eval-limit 150 | tee "$WORK/ar1.log"
"$PY" tools/train/train.py ar --data "$WORK/data" --init "$WORK/ar1.pt" --out "$WORK/ar.pt" --steps "$AR2_STEPS" --lr 1e-3 --warmup 50 --seed 1235 --eval-every 500 --eval-limit 150 | tee "$WORK/ar2.log"
# Translation into block diffusion, from the AR weights.
"$PY" tools/train/train.py bd --data "$WORK/data" --init "$WORK/ar.pt" --out "$WORK/bd1.pt" --steps "$BD_STEPS" --lr 1e-3 --warmup 50 --seed 1236 --eval-every 500 --eval-limit 150 | tee "$WORK/bd1.log"
# Two more cosine cycles of the same objective, each resumed from the previous weights at a lower peak lr
# (the first cycle's accuracy was still rising at its floor): 2000 steps at 5e-4, then 1500 at 4e-4.
"$PY" tools/train/train.py bd --data "$WORK/data" --init "$WORK/bd1.pt" --out "$WORK/bd2.pt" --steps "$BD2_STEPS" --lr 5e-4 --warmup 50 --seed 1237 --eval-every 1000 --eval-limit 150 | tee "$WORK/bd2.log"
"$PY" tools/train/train.py bd --data "$WORK/data" --init "$WORK/bd2.pt" --out "$WORK/bd.pt" --steps "$BD3_STEPS" --lr 4e-4 --warmup 50 --seed 1238 --eval-every 1500 --eval-limit 150 | tee "$WORK/bd3.log"
t1=$(date +%s)
echo "training wall time: $((t1 - t0)) s"
"$PY" tools/train/train.py export --data "$WORK/data" --ckpt "$WORK/ar.pt" --mode ar --out "$WORK/ckpt-ar"
"$PY" tools/train/train.py export --data "$WORK/data" --ckpt "$WORK/bd.pt" --mode bd --out "$WORK/ckpt-bd"
node bin/diffusionvl.js convert "$WORK/ckpt-bd" models/default --precision fp32 --tokenizer "$WORK/ckpt-bd/tokenizer.json" --quiet
node bin/diffusionvl.js convert "$WORK/ckpt-ar" models/default/ar --precision fp32 --tokenizer "$WORK/ckpt-ar/tokenizer.json" --quiet
node -e "require('./out/server/synthetic/examples.js').writeExamples('media/examples')"
node bin/diffusionvl.js eval-synthetic --seed 1 --count 200

#!/usr/bin/env bash
# nanoGPT's shakespeare-char recipe on the GPU, tilegrad and (with --torch) PyTorch in one call:
# 6 layers x 6 heads x 384, block 256, batch 64, dropout 0.2, no biases (nanoGPT's bias = False),
# lr 1e-3 -> 1e-4 cosine over the run after 100 warmup iterations, beta2 0.99, weight decay 0.1,
# clipping 1.0, evaluation every 250 iterations on 200 batches. Validation loss and wall time of
# each; logs under $OUT.
#   bench/device/shakespeare_cuda.sh [--iters N] [--dtype bf16|f32] [--seed S] [--bias]
#                                    [--f32-residual] [--torch]
# (--seed: both runs' seed; default each program's own, 1337. --bias: GPT-2's biases, in both.
# --f32-residual: tilegrad keeps the residual stream in float32, as PyTorch's autocast does.)
# Builds `tilegrad` first (build/device, incremental); needs .devdeps/ carried.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
OUT=${OUT:-out/shakespeare-cuda}
mkdir -p "$OUT"
iters=5000
dtype=bf16
torch=0
seed=1337
torch_wall=
bias=0
f32_residual=0
while [ $# -gt 0 ]; do
  case "$1" in
    --iters) iters=$2; shift ;;
    --dtype) dtype=$2; shift ;;
    --torch) torch=1 ;;
    --seed) seed=$2; shift ;;
    --bias) bias=1 ;;
    --f32-residual) f32_residual=1 ;;
    *) echo "unknown option $1"; exit 2 ;;
  esac
  shift
done
source bench/device/engine_env.sh || exit 1
build=build/device
tg_build "$OUT/build.log" tilegrad || exit 1
tg=$build/tilegrad
"$tg" prepare --tokenizer char --in data/tinyshakespeare.txt --out "$OUT/data" >/dev/null || exit 1
start=$SECONDS
timeout 900 "$tg" train --device cuda --dtype "$dtype" --preset shakespeare-char --batch 64 \
  --steps "$iters" --lr 1e-3 --min-lr 1e-4 --warmup 100 --eval-interval 250 --eval-iters 200 \
  --sample-tokens 300 --seed "$seed" --data "$OUT/data" --out "$OUT/tilegrad" \
  $([ $bias -eq 1 ] || echo --no-bias) $([ $f32_residual -eq 1 ] && echo --f32-residual) \
  >"$OUT/tilegrad.log" 2>&1
rc=$?
tg_wall=$((SECONDS - start))
echo "tilegrad: rc $rc, wall $tg_wall s"
grep -E "val " "$OUT/tilegrad.log" | sed -E 's/ +ETA.*//' | tail -2
# The validation curve (nanoGPT reports the best validation loss of the run) and the wall time.
"${PYTHON:-python3}" - "$OUT/tilegrad/metrics.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
val = [(r["step"], r["val_loss"]) for r in rows if "val_loss" in r]
print("tilegrad val:", " ".join(f"{s}:{v:.4f}" for s, v in val))
best = min(val, key=lambda sv: sv[1])
print(f"tilegrad best val {best[1]:.4f} at step {best[0]}, last {val[-1][1]:.4f}")
PY
sed -n '/^sample:/,$p' "$OUT/tilegrad.log" | head -8
if [ $torch -eq 1 ]; then
  start=$SECONDS
  timeout 900 "${PYTHON:-python3}" bench/device/gpt_torch_cuda.py --mode shakespeare \
    --text data/tinyshakespeare.txt --max-iters "$iters" --seed "$seed" \
    $([ $bias -eq 1 ] && echo --bias || echo --no-bias) >"$OUT/torch.log" 2>&1
  rc=$?
  torch_wall=$((SECONDS - start))
  echo "pytorch: rc $rc, wall $torch_wall s"
  grep -E '"val' "$OUT/torch.log" | tail -40 | "${PYTHON:-python3}" -c '
import json, sys
rows = [json.loads(l) for l in sys.stdin if l.startswith("{")]
val = [(r.get("iter", r.get("step")), r.get("val_loss", r.get("val"))) for r in rows]
val = [(s, v) for s, v in val if v is not None]
if val:
    print("pytorch val:", " ".join(f"{s}:{v:.4f}" for s, v in val))'
  tail -1 "$OUT/torch.log"
fi
# Last, so that a caller keeping only the end of the output still sees both wall times.
echo "wall: tilegrad ${tg_wall} s${torch_wall:+, pytorch ${torch_wall} s}"

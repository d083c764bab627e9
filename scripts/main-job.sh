#!/usr/bin/env bash
# The main job: train a small character-level GPT on Debian's fortune cookies (the `fortunes`
# package, installed by scripts/setup-deps.sh) for a few minutes on the CPU, show the loss
# falling, and print samples. Run from the repository root after building the release preset:
#
#   scripts/main-job.sh [extra `tilegrad train` flags, e.g. --steps 600]
#
# Outputs go to build/main-job/: the corpus and dataset, metrics.jsonl, loss.svg, checkpoints.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
bin=build/release/tilegrad
work=build/main-job
fortunes=/usr/share/games/fortunes
[ -x "$bin" ] || { echo "main-job: build first (cmake --preset release && cmake --build --preset release)" >&2; exit 1; }
[ -d "$fortunes" ] || { echo "main-job: $fortunes is missing; run scripts/setup-deps.sh" >&2; exit 1; }

mkdir -p "$work"
# The plain-text fortune files (not the .dat indexes or .u8 links), '%' separators dropped.
find "$fortunes" -maxdepth 1 -type f ! -name '*.dat' ! -name '*.u8' -print0 | sort -z |
  xargs -0 cat | grep -v '^%$' > "$work/fortunes.txt"

"$bin" prepare --tokenizer char --in "$work/fortunes.txt" --out "$work/data"
# nanoGPT's shakespeare-char recipe, scaled to finish in a few minutes on two cores.
OMP_NUM_THREADS="${OMP_NUM_THREADS:-$(nproc)}" "$bin" train --preset shakespeare-char \
  --data "$work/data" --out "$work/run" --layers 4 --heads 4 --width 192 --block 128 \
  --batch 16 --steps 800 --lr 2e-3 --dropout 0.1 --eval-interval 100 --eval-iters 8 \
  --sample-tokens 0 "$@"
"$bin" sample --run "$work/run" --prompt $'\n' --tokens 300 --samples 3

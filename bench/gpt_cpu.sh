#!/usr/bin/env bash
# The CPU training-speed requirement (docs/BENCHMARKS.md): tokens/s of one shakespeare-char training
# step at batch 8 (forward, backward, clipping, AdamW) in tilegrad (bench_gpt) against the same
# model and step in PyTorch on the CPU (bench/gpt_torch.py), one after the other in this session,
# with the same thread count. PyTorch is a peer for this benchmark only: Debian's python3-torch
# (apt-get install python3-torch), never a dependency of the build.
#
#   bench/gpt_cpu.sh            build bench_gpt (release preset), run both, print the ratio
#   THREADS=1 bench/gpt_cpu.sh  another thread count for both
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
threads="${THREADS:-$(nproc)}"
python="${PYTHON:-/usr/bin/python3}"
"$python" -c "import torch" 2>/dev/null || {
  echo "gpt_cpu.sh: PyTorch is missing: apt-get install python3-torch" >&2
  exit 2
}
bin="${TILEGRAD_BENCH_BIN:-}"
if [[ -z "$bin" ]]; then
  cmake --preset release >/dev/null
  cmake --build --preset release --target bench_gpt
  bin=build/release/bench
fi
out=build/bench
mkdir -p "$out"

OMP_NUM_THREADS="$threads" "$bin/bench_gpt" --benchmark_filter='preset:0/B:8' \
  --benchmark_repetitions=3 --benchmark_report_aggregates_only=true \
  --benchmark_out="$out/gpt.json" --benchmark_out_format=json
OMP_NUM_THREADS="$threads" "$python" bench/gpt_torch.py --threads "$threads" --steps 10 |
  tee "$out/gpt_torch.json"

"$python" - "$out/gpt.json" "$out/gpt_torch.json" <<'PY'
import json, sys
ours = json.load(open(sys.argv[1]))
peer = json.loads(open(sys.argv[2]).read())
print(f"\nshakespeare-char, batch 8, T=256, {peer['threads']} threads "
      f"(PyTorch {peer['torch']}: {peer['tokens_per_s']:.0f} tokens/s, {peer['ms_per_step']:.0f} ms/step)")
ok = True
for b in ours["benchmarks"]:
    if b.get("aggregate_name") != "median":
        continue
    impl = "flash" if "flash:1" in b["name"] else "standard"
    ratio = b["tokens"] / peer["tokens_per_s"]
    verdict = "PASS" if ratio >= 1.0 else "FAIL"
    ok = ok and (impl != "flash" or ratio >= 1.0)
    print(f"  tilegrad ({impl} attention): {b['tokens']:.0f} tokens/s, "
          f"{b['real_time']:.0f} ms/step, x{ratio:.2f} of PyTorch  {verdict if impl == 'flash' else ''}")
sys.exit(0 if ok else 1)
PY

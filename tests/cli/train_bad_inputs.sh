#!/usr/bin/env bash
# `tilegrad train` on bad input, end to end through the CLI: each case must fail with exit status
# 2 and a message that names the problem, and leave the run's last checkpoint byte-for-byte as it
# was. Cases: a missing dataset, an empty and a too-short train.bin, token ids >= the vocabulary,
# --resume with another model config, running out of space during a checkpoint save, a memory
# limit below the predicted peak (refused before anything is written), and a step that fails
# mid-run (the last checkpoint loads, and --resume finishes the run as if nothing had happened).
#   train_bad_inputs.sh TILEGRAD_BINARY CORPUS WORK_DIR
set -uo pipefail
bin="$1" corpus="$2" work="$3"
rm -rf "$work" && mkdir -p "$work"
failures=0
tiny=(--preset tiny --eval-interval 0 --eval-iters 1 --sample-tokens 0)

fail() {
  echo "FAIL: $*"
  failures=$((failures + 1))
}

# A prepared dataset and a run with one checkpoint (step 2), whose files every case must keep.
"$bin" prepare --tokenizer char --in "$corpus" --out "$work/data" >/dev/null || exit 1
"$bin" train "${tiny[@]}" --steps 2 --data "$work/data" --out "$work/run" >/dev/null 2>&1 || exit 1
fingerprint() { find "$work/run/checkpoints" -type f -print0 | sort -z | xargs -0 sha256sum; }
before="$(fingerprint)"
[ -n "$before" ] || { echo "no checkpoint written"; exit 1; }

# expect NAME PATTERN ARGS...: tilegrad ARGS exits 2, stderr matches PATTERN, the checkpoint stands.
expect() {
  local name="$1" pattern="$2"
  shift 2
  local err rc had=$failures
  err="$("$bin" "$@" 2>&1 >/dev/null)"
  rc=$?
  [ $rc -eq 2 ] || fail "$name: exit status $rc, expected 2 ($err)"
  grep -Eq -- "$pattern" <<<"$err" || fail "$name: message '$err' does not match '$pattern'"
  [ "$(fingerprint)" = "$before" ] || fail "$name: the checkpoint changed"
  [ $failures -ne $had ] || echo "ok: $name: $err"
}

bad_data() {  # a copy of the dataset for one case
  rm -rf "$work/$1" && cp -r "$work/data" "$work/$1"
  echo "$work/$1"
}

expect "missing dataset" "dataset directory .*no_such_dir does not exist" train "${tiny[@]}" --steps 2 --data "$work/no_such_dir" --out "$work/run"

d="$(bad_data empty)"
: >"$d/train.bin"
expect "empty train.bin" "train.bin: the file is empty" train "${tiny[@]}" --steps 2 --data "$d" --out "$work/run"

# A valid header holding 10 tokens: fewer than the block (32) + 1 that one window needs.
d="$(bad_data short)"
{
  printf '\x88\xd8\x34\x01\x01\x00\x00\x00\x0a\x00\x00\x00'  # magic 20240520, version 1, 10 tokens
  head -c $((256 * 4 - 12)) /dev/zero
  head -c 20 /dev/zero
} >"$d/train.bin"
expect "too-short train.bin" "train.bin: .*10 tokens" train "${tiny[@]}" --steps 2 --data "$d" --out "$work/run"

# Byte ids (up to 255) against the character vocabulary of the first dataset (65 characters).
"$bin" prepare --tokenizer bytes --in "$corpus" --out "$work/bytes" >/dev/null || exit 1
d="$(bad_data big_ids)"
cp "$work/bytes/train.bin" "$d/train.bin"
expect "token ids >= vocabulary" "token [0-9]+ at position [0-9]+ is outside the vocabulary" \
  train "${tiny[@]}" --steps 2 --data "$d" --out "$work/run"

expect "resume with another config" "config" \
  train "${tiny[@]}" --width 48 --steps 4 --data "$work/data" --out "$work/run" --resume

# Out of space mid-save: a file-size limit the checkpoint's files exceed (writes then fail with
# EFBIG; SIGXFSZ is ignored so that the write reports it instead of killing the process): 100 KiB,
# less than the tiny model's 114 KB of weights, so the save fails in its first file.
(
  failures=0
  trap '' XFSZ
  ulimit -f 100
  expect "out of space during a save" "File too large" \
    train "${tiny[@]}" --steps 4 --checkpoint-interval 1 --data "$work/data" --out "$work/run" \
    --resume
  exit $failures
) || failures=$((failures + 1))

# The memory check: a limit below the run's predicted peak (the tiny model's is ~2.5 MB) is refused
# before the first step, with the numbers, and the output directory is never created.
expect "memory limit below the predicted peak" \
  "out of memory predicted on cpu: the run's predicted peak is [0-9]+ bytes.*activations.*but 500000 bytes.*--memory-limit.*--batch" \
  train "${tiny[@]}" --steps 2 --data "$work/data" --out "$work/refused" --memory-limit 500kB
[ ! -e "$work/refused" ] || fail "memory limit: the refused run created its output directory"

# A step that fails mid-run (the testing option --fault-at-step throws inside step 5, as a CUDA
# error would): exit status 2, a message naming the step and the last checkpoint (step 4); that
# checkpoint loads, and --resume finishes with the losses of a run that never failed.
"$bin" train "${tiny[@]}" --steps 6 --data "$work/data" --out "$work/straight" >/dev/null 2>&1 ||
  fail "fault: the uninterrupted run failed"
err="$("$bin" train "${tiny[@]}" --steps 6 --checkpoint-interval 2 --fault-at-step 5 \
  --data "$work/data" --out "$work/fault" 2>&1 >/dev/null)"
rc=$?
[ $rc -eq 2 ] || fail "fault: exit status $rc, expected 2 ($err)"
grep -Eq "step 5 of 6 failed: injected fault.*last complete checkpoint is .*step-00000004.*--resume" \
  <<<"$err" || fail "fault: message '$err'"
left="$(ls "$work/fault/checkpoints" | tr '\n' ' ')"
[ "$left" = "step-00000002 step-00000004 " ] || fail "fault: checkpoints left: $left"
"$bin" sample --ckpt "$work/fault/checkpoints/step-00000004" --tokens 8 >/dev/null 2>&1 ||
  fail "fault: the last checkpoint does not load"
"$bin" train "${tiny[@]}" --steps 6 --checkpoint-interval 2 --data "$work/data" \
  --out "$work/fault" --resume >/dev/null 2>&1 || fail "fault: --resume failed"
loss6() { grep '"step":6[,}]' "$1/metrics.jsonl" | grep -o '"loss":[^,]*'; }
[ -n "$(loss6 "$work/straight")" ] && [ "$(loss6 "$work/fault")" = "$(loss6 "$work/straight")" ] ||
  fail "fault: step 6 after --resume: $(loss6 "$work/fault"), uninterrupted: $(loss6 "$work/straight")"
[ $failures -ne 0 ] || echo "ok: a failed step: $err"

echo "$failures failure(s)"
[ $failures -eq 0 ]

#!/usr/bin/env bash
# Installs tilegrad's build dependencies from Debian packages (Debian 12 "bookworm" or newer), and
# `fortunes`, the few MB of English text the main job (scripts/main-job.sh) trains on.
#
# Idempotent: when every package is already installed it changes nothing and needs no root (so the
# README's one-line commands also work for a user without sudo on a prepared machine). Otherwise
# it runs apt-get update and install as root, through sudo when not root already.
set -euo pipefail

packages=(
  cmake
  ninja-build
  g++
  libopenblas-openmp-dev
  libgtest-dev
  libbenchmark-dev
  libcli11-dev
  nlohmann-json3-dev
  libpcre2-dev
  clang-format
  fortunes
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ "${#missing[@]}" -eq 0 ]; then
  echo "setup-deps: all build dependencies are installed"
  exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
  as_root=()
elif command -v sudo >/dev/null 2>&1; then
  as_root=(sudo)
else
  echo "setup-deps: need root to install: ${missing[*]} (run as root, or install sudo)" >&2
  exit 1
fi

echo "setup-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive \
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "setup-deps: done"

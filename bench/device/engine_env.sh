# Sourced by the device scripts that build the whole engine on the GPU machine. That machine lacks
# some of the build's Debian packages (CLI11, nlohmann-json, PCRE2's headers; its OpenBLAS and
# GoogleTest may differ from Debian 12's), and it cannot reach a package mirror. So the .deb files
# are downloaded here once, into .devdeps/ (git-ignored), and carried with the call:
#
#   mkdir -p .devdeps && (cd .devdeps && apt-get download libcli11-dev nlohmann-json3-dev \
#     libgtest-dev libopenblas-dev libopenblas0 libopenblas0-pthread libopenblas-pthread-dev \
#     libgfortran5 libpcre2-dev libpcre2-8-0 libpcre2-16-0 libpcre2-32-0 libpcre2-posix3)
#
# and unpacked under /opt/tgdeps (never over /, where they could replace the system's libraries),
# with the absolute /usr paths in their CMake and pkg-config files pointed there. Exports
# TG_CMAKE_DEPS (the cmake arguments that find them) and the library and pkg-config paths.
deps=/opt/tgdeps
if [ ! -d "$deps/usr" ]; then
  [ -d .devdeps ] || { echo "engine_env.sh: no .devdeps/ (carry it; see the comment above)"; return 1; }
  mkdir -p "$deps"
  for f in .devdeps/*.deb; do dpkg -x "$f" "$deps"; done
  grep -rlZ --include='*.cmake' --include='*.pc' '/usr' "$deps/usr" |
    xargs -0 sed -i -e "s|=/usr|=$deps/usr|g" -e "s| /usr/| $deps/usr/|g" -e "s|(/usr/|($deps/usr/|g"
fi
arch=x86_64-linux-gnu
export PKG_CONFIG_PATH="$deps/usr/lib/$arch/pkgconfig:$deps/usr/share/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
export LD_LIBRARY_PATH="$deps/usr/lib/$arch/openblas-pthread:$deps/usr/lib/$arch${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export TG_CMAKE_DEPS="-DCMAKE_PREFIX_PATH=$deps/usr -DOpenBLAS_DIR=$deps/usr/lib/$arch/openblas-pthread/cmake/openblas -DGTest_DIR=$deps/usr/lib/$arch/cmake/GTest"

# tg_build LOG TARGET...: configures the engine with its CUDA backend in build/device (incremental
# across calls on a warm machine) and builds the targets, output into LOG; on failure prints the
# errors and the time taken and returns 1, else prints the time taken.
tg_build() {
  local log=$1 start=$SECONDS
  shift
  # shellcheck disable=SC2086
  if ! { cmake -S . -B build/device -G Ninja -DCMAKE_BUILD_TYPE=Release -DTILEGRAD_CUDA=ON \
      -DTILEGRAD_BUILD_BENCH=OFF $TG_CMAKE_DEPS &&
    ninja -C build/device -k 0 -j"$(nproc)" "$@"; } >"$log" 2>&1; then
    grep -E "error|Error" -A4 "$log" | head -60
    echo "build failed ($((SECONDS - start)) s)"
    return 1
  fi
  echo "build: $((SECONDS - start)) s"
}

#!/usr/bin/env bash
# Suffix decoding on the GPU host: vLLM's `suffix` method imports the suffix trees of
# arctic-inference, which PyPI ships only as an sdist with a C++ (nanobind) extension, and the
# GPU host (Python 3.12, no registry) cannot install that. So the sdist travels, and only the
# suffix-tree extension is built there with the image's own CMake, ninja and nanobind; the
# package's vLLM plugin (written for vLLM 0.10) is left out, so nothing patches vLLM 0.24.
#   bash benchmarks/gpu_suffix.sh stage    # here: the pinned sdist into .gpu/arctic (checked by sha256)
#   bash benchmarks/gpu_suffix.sh build    # there: builds into $HOME/arctic-site; add it to PYTHONPATH
set -euo pipefail
VERSION=0.1.1   # setup.sh's pin for the CPU machine
URL=https://files.pythonhosted.org/packages/2a/d2/3bcebda042d08cfa0f35a2bbc6dd168d60fea60b6678824665c7a3665418/arctic_inference-$VERSION.tar.gz
SHA256=36857e2fbe3ead34821a04be98dfab95086050c1e38199c8fdfe308234fdcf63
SDIST=.gpu/arctic/arctic_inference-$VERSION.tar.gz
cd "$(dirname "$0")/.."
case "${1:-}" in
stage)
  mkdir -p .gpu/arctic
  if [ ! -f "$SDIST" ]; then curl -fsSL -o "$SDIST.tmp" "$URL"; mv "$SDIST.tmp" "$SDIST"; fi
  echo "$SHA256  $SDIST" | sha256sum -c - ;;
build)
  echo "$SHA256  $SDIST" | sha256sum -c -
  src=$HOME/arctic-src site=$HOME/arctic-site
  rm -rf "$src" "$site" && mkdir -p "$src" "$site/arctic_inference/suffix_decoding"
  tar xzf "$SDIST" -C "$src" --strip-components=1
  gen=(); command -v ninja >/dev/null && gen=(-G Ninja)
  cmake -S "$src/csrc/suffix_decoding" -B "$src/build" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release \
        -DPython_EXECUTABLE="$(command -v python3)" > "$src/cmake.log" 2>&1 || { tail -30 "$src/cmake.log"; exit 1; }
  cmake --build "$src/build" -j 8 > "$src/build.log" 2>&1 || { tail -30 "$src/build.log"; exit 1; }
  cp "$src/arctic_inference/__init__.py" "$site/arctic_inference/"
  cp "$src"/arctic_inference/suffix_decoding/*.py "$src"/build/_C*.so "$site/arctic_inference/suffix_decoding/"
  PYTHONPATH="$site" python3 -c "
from arctic_inference.suffix_decoding import SuffixDecodingCache
c = SuffixDecodingCache(max_tree_depth=8, max_cached_requests=4)
print('suffix trees built:', type(c).__name__)" ;;
*) echo "usage: $0 stage | build"; exit 2 ;;
esac

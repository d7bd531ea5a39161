#!/usr/bin/env bash
# Builds what the GPU checks run (docs/benchmarks/gpu-h200.md) and packs it into
# .devbin/ at the repository root: `lrscape` and the backend parity test with
# the wgpu backend, stripped and xz-compressed (a GPU machine without Rust or
# network gets the binaries, not the sources), plus Vulkan's loader as
# Debian packages in .gl/. Both folders are for carrying, not committing:
# add `/.devbin/` and `/.gl/` to .git/info/exclude.
set -euo pipefail
cd "$(dirname "$0")/../.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/lrscape/target}"
mkdir -p .devbin .gl
cargo build --release -p lrscape --features wgpu
parity=$(cargo test --release -p lrscape --features wgpu --test backend_parity --no-run 2>&1 \
  | sed -n 's/.*Executable tests\/backend_parity.rs (\(.*\))/\1/p')
strip -o .devbin/lrscape "$CARGO_TARGET_DIR/release/lrscape"
strip -o .devbin/parity "$parity"
rm -f .devbin/*.xz && xz -T0 -6 .devbin/lrscape .devbin/parity
if ! ls .gl/libvulkan1_*.deb >/dev/null 2>&1; then
  o='-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64'
  mkdir -p /tmp/amd64/partial
  apt-get $o update >/dev/null
  (cd .gl && apt-get $o download libvulkan1)
fi
ls -la .devbin .gl

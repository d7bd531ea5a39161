#!/usr/bin/env bash
# The GPU checks of docs/benchmarks/gpu-h200.md, run on the GPU machine from the
# repository root with .devbin/ and .gl/ carried (tools/gpu/pack.sh makes
# them): wgpu parity against flex, `lrscape bench` on wgpu beside PyTorch on
# CUDA, and the default study whole. Writes into $OUT (default ./gpu-out).
set -u
cd "$(dirname "$0")/../.."
OUT="${OUT:-$PWD/gpu-out}"; mkdir -p "$OUT"
for f in .gl/*.deb; do dpkg -x "$f" /; done; ldconfig
export VK_DRIVER_FILES="${VK_DRIVER_FILES:-/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json}"
for f in lrscape parity; do
  python3 -c "import lzma,shutil,sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2],'wb'))" \
    ".devbin/$f.xz" "/tmp/$f"
  chmod +x "/tmp/$f"
done
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
echo "=== parity $(date +%T)"
LRSCAPE_PARITY_STEPS=12 timeout 120 /tmp/parity --nocapture 2>&1 | tee "$OUT/parity.log" | grep -E "vs flex|test result"
echo "=== bench $(date +%T)"
timeout 180 /tmp/lrscape bench --device wgpu --torch-device cuda --in-process --workers 1 \
  --populations 1,16,64,256 --out "$OUT/wgpu" 2>&1 | grep -E "^\| (LoRA|full|PyTorch)|GEMM"
echo "=== default study $(date +%T)"
mkdir -p /tmp/default && cp -r results/default/base /tmp/default/ 2>/dev/null
timeout 300 /tmp/lrscape run --config configs/default.toml --device wgpu --max-population 64 \
  --out /tmp/default 2>&1 | tr '\r' '\n' | grep -v '^\s*$' | grep -vE "steps .*eta" | tail -16
cp /tmp/default/trials.jsonl "$OUT/default-trials.jsonl" 2>/dev/null
echo "=== end $(date +%T)"

"""The products of one GPT-2-124M-shaped training step, timed in PyTorch.

The counterpart of `crates/bench/examples/gemm_shapes.rs` (same products,
same lines): `python tools/bench/gemm_shapes.py [rows]`, two threads.
"""

import sys
import time

import torch

PRODUCTS = [
    ("c_attn", 768, 2304, False, 12),
    ("c_attn grad", 2304, 768, True, 12),
    ("attn.c_proj", 768, 768, False, 12),
    ("attn.c_proj grad", 768, 768, True, 12),
    ("c_fc", 768, 3072, False, 12),
    ("c_fc grad", 3072, 768, True, 12),
    ("mlp.c_proj", 3072, 768, False, 12),
    ("mlp.c_proj grad", 768, 3072, True, 12),
    ("head (wte^T)", 768, 50257, True, 1),
    ("head grad (wte)", 50257, 768, False, 1),
]
REPS = 20


def main() -> None:
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else 64
    torch.set_num_threads(2)
    step = 0.0
    for name, k, n, transposed, uses in PRODUCTS:
        x = torch.randn(rows, k)
        w = torch.randn(n, k).t() if transposed else torch.randn(k, n)
        x @ w
        start = time.perf_counter()
        for _ in range(REPS):
            x @ w
        seconds = (time.perf_counter() - start) / REPS
        step += seconds * uses
        gflops = 2 * rows * k * n / seconds / 1e9
        print(f"{name:18} [{rows}, {k}] · [{k}, {n}]: {seconds * 1e3:8.3f} ms {gflops:6.1f} GFLOP/s")
    print(f"one step's products: {step * 1e3:.1f} ms")


if __name__ == "__main__":
    main()

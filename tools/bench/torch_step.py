"""The lrscape bench's training step in PyTorch eager, for comparison.

One step = forward + backward + `torch.optim.AdamW` on the seed notebook's
TinyTransformer (the class in tools/golden/tinyformer_golden.py, copied
verbatim from the notebook), batch `--batch`, one model (population 1):

- `lora`: every block linear (q, k, v, o, mlp up, mlp down) frozen and
  wrapped as HF PEFT computes LoRA, `x W^T + b + s * (x A^T) B^T` with
  `A: [r, in] ~ N(0, std)`, `B: [out, r] = 0`, `s = alpha / r`; the head
  trained (the seed notebook's `train_head`), everything else frozen.
- `lora_weight_space`: the same adapters computed in weight space,
  `x (W + s B A)^T + b` (one product per linear; the dense `W + s B A`
  formed each step), the comparison for lrscape's `weight_space` compute.
- `full`: every parameter trained.

The weights are random (PyTorch's default init), as in the Rust bench: the
cost of a step does not depend on the values. Tokens and labels are random.

Prints one JSON object: torch version and, per thread count and mode, the
mean milliseconds per step over `--steps` timed steps after `--warmup`
steps. `--threads 2,1` times both `torch.set_num_threads(2)` and (1): on a
2-core machine that other processes keep busy, two OpenMP threads can be
many times slower than one (each barrier waits for a descheduled thread).

`--device cuda` times the step on the GPU instead (the model, tokens and
labels on it; `torch.cuda.synchronize()` before the clock starts and before
it stops; thread counts then only set the host's threads).

Run: python3 tools/bench/torch_step.py [--threads 2,1]
[--modes lora,lora_weight_space,full]
[--device cpu|cuda] ...
(`lrscape bench` runs it with the seed model's shape when torch imports).
"""

import argparse
import json
import pathlib
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "golden"))
from tinyformer_golden import TinyTransformer  # noqa: E402


class LoraLinear(nn.Module):
    """A frozen `nn.Linear` plus HF PEFT's activation-space low-rank path."""

    def __init__(self, base, r, alpha, std):
        super().__init__()
        self.base = base
        for p in self.base.parameters():
            p.requires_grad_(False)
        self.lora_A = nn.Parameter(torch.randn(r, base.in_features) * std)
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, r))
        self.scaling = alpha / r

    def forward(self, x):
        return self.base(x) + (x @ self.lora_A.t()) @ self.lora_B.t() * self.scaling


class LoraLinearWeightSpace(LoraLinear):
    """The same adapter with its update merged into the weight every step."""

    def forward(self, x):
        weight = self.base.weight + (self.lora_B @ self.lora_A) * self.scaling
        return F.linear(x, weight, self.base.bias)


def adapt(model, r, alpha, std, train_head, layer=LoraLinear):
    for p in model.parameters():
        p.requires_grad_(False)
    for block in model.blocks:
        attn = block.attn
        for name in ("q", "k", "v", "o"):
            setattr(attn, name, layer(getattr(attn, name), r, alpha, std))
        block.mlp[0] = layer(block.mlp[0], r, alpha, std)
        block.mlp[2] = layer(block.mlp[2], r, alpha, std)
    if train_head:
        for p in model.head.parameters():
            p.requires_grad_(True)
    return model


MODES = ("lora", "lora_weight_space", "full")


def time_mode(args, mode, threads):
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = TinyTransformer(
        args.vocab, args.seq_len, args.d_model, args.n_layers, args.n_heads, args.d_ff
    )
    if mode == "lora":
        model = adapt(model, args.rank, args.alpha, args.std, args.train_head)
    elif mode == "lora_weight_space":
        model = adapt(
            model, args.rank, args.alpha, args.std, args.train_head, LoraLinearWeightSpace
        )
    device = torch.device(args.device)
    model = model.to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.0)
    tokens = torch.randint(0, args.vocab, (args.batch, args.seq_len)).to(device)
    labels = torch.randint(0, args.vocab, (args.batch,)).to(device)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    def step():
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(tokens), labels)
        loss.backward()
        opt.step()
        return loss

    for _ in range(args.warmup):
        step()
    sync()
    started = time.perf_counter()
    for _ in range(args.steps):
        loss = step()
    sync()
    seconds = time.perf_counter() - started
    return {
        "mode": mode,
        "device": args.device,
        "threads": torch.get_num_threads(),
        "rank": args.rank if mode.startswith("lora") else 0,
        "steps": args.steps,
        "seconds": seconds,
        "ms_per_step": 1000.0 * seconds / args.steps,
        "trainable": sum(p.numel() for p in params),
        "loss_finite": bool(torch.isfinite(loss.detach()).item()),
    }


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--vocab", type=int, default=64)
    p.add_argument("--seq-len", type=int, default=32)
    p.add_argument("--d-model", type=int, default=128)
    p.add_argument("--n-layers", type=int, default=3)
    p.add_argument("--n-heads", type=int, default=4)
    p.add_argument("--d-ff", type=int, default=256)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--rank", type=int, default=16)
    p.add_argument("--alpha", type=float, default=None, help="default: rank (alpha = r)")
    p.add_argument("--std", type=float, default=0.02, help="std of A's Gaussian init")
    p.add_argument("--train-head", type=int, default=1, choices=(0, 1))
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--threads", default="2", help="comma-separated thread counts, e.g. 2,1")
    p.add_argument("--modes", default=",".join(MODES))
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    args = p.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda: torch sees no CUDA device")
    if args.alpha is None:
        args.alpha = float(args.rank)
    if args.steps < 1:
        p.error(f"--steps {args.steps}: at least 1")
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    for m in modes:
        if m not in MODES:
            p.error(f"--modes: unknown mode {m!r}; one of {', '.join(MODES)}")
    try:
        thread_counts = [int(t) for t in args.threads.split(",") if t.strip()]
    except ValueError:
        p.error(f"--threads {args.threads!r}: comma-separated integers >= 1, e.g. 2,1")
    if not thread_counts or min(thread_counts) < 1:
        p.error(f"--threads {args.threads!r}: comma-separated integers >= 1, e.g. 2,1")
    results = [time_mode(args, m, t) for t in thread_counts for m in modes]
    print(
        json.dumps(
            {
                "torch_version": torch.__version__,
                "batch": args.batch,
                "results": results,
            }
        )
    )


if __name__ == "__main__":
    main()

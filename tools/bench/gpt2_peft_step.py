"""The GPT-2 bench's training step in PyTorch eager with HF PEFT, for
comparison with `lrscape bench --gpt2-memory`.

One step = forward + backward + `torch.optim.AdamW` of `GPT2LMHeadModel`
with GPT-2-124M's shape (`GPT2Config()`: 12 layers, width 768, vocabulary
50257; random weights, dropout off), on `--batch` random sequences of
`--seq` tokens with `labels = input_ids`:

- `lora_c_attn`: PEFT LoRA r = `--rank`, `lora_alpha = r`, on `c_attn`
  (PEFT's default for GPT-2), `fan_in_fan_out = True`;
- `lora_all_linear`: the same on every block linear (`c_attn`, `c_proj`,
  `c_fc`);
- `full`: every weight trained.

Each mode runs in a child process of its own (`--child MODE`), which reads
Linux's resident high-water mark (`VmHWM`) with the model built (idle) and
after its steps (peak), and times `--steps` steps after `--warmup`, at
`torch.set_num_threads(--threads)`.

Prints one JSON object: versions, threads, and per mode the milliseconds
per step (mean of the timed steps), idle and peak MiB, trainable
parameters.

Run: python3 tools/bench/gpt2_peft_step.py [--modes lora_c_attn,lora_all_linear,full]
     [--seq 64] [--batch 1] [--rank 16] [--steps 3] [--warmup 1] [--threads 2]
"""

import argparse
import json
import os
import subprocess
import sys
import time

MODES = ["lora_c_attn", "lora_all_linear", "full"]


def vm_hwm_mib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def child(args):
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    config = GPT2Config(attn_pdrop=0.0, embd_pdrop=0.0, resid_pdrop=0.0)
    model = GPT2LMHeadModel(config)
    if args.child != "full":
        from peft import LoraConfig, get_peft_model

        targets = ["c_attn"] if args.child == "lora_c_attn" else ["c_attn", "c_proj", "c_fc"]
        lora = LoraConfig(r=args.rank, lora_alpha=args.rank, target_modules=targets, fan_in_fan_out=True)
        model = get_peft_model(model, lora)
    model.train()
    tokens = torch.randint(0, config.vocab_size, (args.batch, args.seq))
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4)
    idle = vm_hwm_mib()

    def step():
        opt.zero_grad(set_to_none=True)
        loss = model(input_ids=tokens, labels=tokens).loss
        loss.backward()
        opt.step()

    for _ in range(args.warmup):
        step()
    started = time.perf_counter()
    for _ in range(args.steps):
        step()
    seconds = (time.perf_counter() - started) / args.steps
    print(
        json.dumps(
            {
                "mode": args.child,
                "ms_per_step": 1000.0 * seconds,
                "idle_mib": idle,
                "peak_mib": vm_hwm_mib(),
                "trainable": sum(p.numel() for p in params),
            }
        )
    )


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--seq", type=int, default=64)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--rank", type=int, default=16)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--child", choices=MODES)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    import peft
    import torch
    import transformers

    results = []
    for mode in args.modes.split(","):
        command = [sys.executable, __file__, "--child", mode] + [
            f"--{k}={getattr(args, k)}" for k in ("seq", "batch", "rank", "steps", "warmup", "threads")
        ]
        out = subprocess.run(command, capture_output=True, text=True)
        if out.returncode != 0:
            sys.exit(f"{mode} failed: {out.stderr[-2000:]}")
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    print(
        json.dumps(
            {
                "torch": torch.__version__,
                "transformers": transformers.__version__,
                "peft": peft.__version__,
                "threads": args.threads,
                "seq": args.seq,
                "batch": args.batch,
                "rank": args.rank,
                "modes": results,
            }
        )
    )


if __name__ == "__main__":
    main()

"""Learning-rate factors of `transformers`' schedules, for lrscape's
`finetune.lr_scheduler_type` / `warmup_ratio`.

For each schedule (constant, linear, cosine), warm-up ratio and run length,
the factor `LambdaLR` applies at every optimizer step, with the warm-up
steps the `Trainer` derives (`ceil(warmup_ratio * total)`). Writes
fixtures/schedule_golden.json.

Run: python tools/golden/schedule_golden.py   (needs torch and transformers)
"""

import json
import math
import pathlib

import torch
import transformers
from transformers import get_scheduler

OUT = pathlib.Path(__file__).resolve().parents[2] / "fixtures" / "schedule_golden.json"


def factors(kind, warmup_ratio, total):
    param = torch.nn.Parameter(torch.zeros(1))
    optim = torch.optim.SGD([param], lr=1.0)
    warmup = math.ceil(warmup_ratio * total)
    scheduler = get_scheduler(kind, optim, num_warmup_steps=warmup, num_training_steps=total)
    out = []
    for _ in range(total):
        out.append(optim.param_groups[0]["lr"])
        optim.step()
        scheduler.step()
    return out


def main():
    cases = []
    for kind in ["constant_with_warmup", "linear", "cosine"]:
        for warmup_ratio in [0.0, 0.03, 0.25]:
            for total in [1, 7, 100]:
                cases.append({"schedule": kind.removesuffix("_with_warmup"),
                              "warmup_ratio": warmup_ratio, "total": total,
                              "factors": factors(kind, warmup_ratio, total)})
    OUT.write_text(json.dumps({"transformers_version": transformers.__version__,
                               "cases": cases}) + "\n")


if __name__ == "__main__":
    main()

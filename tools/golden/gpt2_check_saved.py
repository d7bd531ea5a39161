"""Loads a GPT-2 directory lrscape saved with `transformers` and checks its
logits and loss on fixtures/gpt2/golden.json's tokens against the f32
fixture (what transformers computed for the model lrscape read).

Run: python tools/golden/gpt2_check_saved.py DIR   (exit 1 on a mismatch)
"""

import json
import pathlib
import sys

import torch
from transformers import GPT2LMHeadModel

GOLDEN = pathlib.Path(__file__).resolve().parents[2] / "fixtures" / "gpt2" / "golden.json"


def main(directory):
    golden = json.loads(GOLDEN.read_text())
    model = GPT2LMHeadModel.from_pretrained(directory).eval()
    tokens = torch.tensor(golden["tokens"])
    with torch.no_grad():
        out = model(input_ids=tokens, labels=tokens)
    want = torch.tensor(golden["f32"]["logits"]["data"]).reshape(out.logits.shape)
    worst = float((out.logits - want).abs().max())
    loss_gap = abs(float(out.loss) - golden["f32"]["loss"])
    print(json.dumps({"max_logit_diff": worst, "loss_diff": loss_gap}))
    return 0 if worst < 1e-5 and loss_gap < 1e-5 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))

"""Loads a model directory lrscape saved with `transformers`
(`AutoModelForCausalLM`: GPT-2, Llama, Qwen2, Qwen3) and checks its logits
and loss on a golden file's tokens against the entry of that file
(what transformers computed for the model lrscape read).

Run: python tools/golden/check_saved.py DIR GOLDEN.json ENTRY
     (exit 1 on a mismatch)
"""

import json
import pathlib
import sys

import torch
from transformers import AutoModelForCausalLM


def main(directory, golden_path, entry):
    golden = json.loads(pathlib.Path(golden_path).read_text())
    model = AutoModelForCausalLM.from_pretrained(directory).eval()
    tokens = torch.tensor(golden["tokens"])
    with torch.no_grad():
        out = model(input_ids=tokens, labels=tokens)
    want = torch.tensor(golden[entry]["logits"]["data"]).reshape(out.logits.shape)
    worst = float((out.logits - want).abs().max())
    loss_gap = abs(float(out.loss) - golden[entry]["loss"])
    print(json.dumps({"max_logit_diff": worst, "loss_diff": loss_gap}))
    return 0 if worst < 1e-5 and loss_gap < 1e-5 else 1


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))

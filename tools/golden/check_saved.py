"""Loads a model directory lrscape saved with `transformers` and checks its
logits and loss on a golden file's tokens against the entry of that file
(what transformers computed for the model lrscape read): a causal LM
(`AutoModelForCausalLM`: GPT-2, Llama, Qwen2, Qwen3) on `tokens`, or an
encoder (DistilBERT, BERT) on `input_ids` and `attention_mask`, its entry
under `models`: a sequence classifier (`AutoModelForSequenceClassification`,
with `labels`) where the entry has a loss, else a masked LM
(`AutoModelForMaskedLM`, logits only).

Run: python tools/golden/check_saved.py DIR GOLDEN.json ENTRY
     (exit 1 on a mismatch)
"""

import json
import pathlib
import sys

import torch
from transformers import (AutoModelForCausalLM, AutoModelForMaskedLM,
                          AutoModelForSequenceClassification)


def main(directory, golden_path, entry):
    golden = json.loads(pathlib.Path(golden_path).read_text())
    with torch.no_grad():
        if "input_ids" in golden:
            expected = golden["models"][entry]
            inputs = {"input_ids": torch.tensor(golden["input_ids"]),
                      "attention_mask": torch.tensor(golden["attention_mask"])}
            if "loss" in expected:
                model = AutoModelForSequenceClassification.from_pretrained(directory).eval()
                out = model(**inputs, labels=torch.tensor(golden["labels"]))
            else:
                model = AutoModelForMaskedLM.from_pretrained(directory).eval()
                out = model(**inputs)
        else:
            model = AutoModelForCausalLM.from_pretrained(directory).eval()
            tokens = torch.tensor(golden["tokens"])
            out = model(input_ids=tokens, labels=tokens)
            expected = golden[entry]
    want = torch.tensor(expected["logits"]["data"]).reshape(out.logits.shape)
    worst = float((out.logits - want).abs().max())
    loss_gap = abs(float(out.loss) - expected["loss"]) if "loss" in expected else 0.0
    print(json.dumps({"max_logit_diff": worst, "loss_diff": loss_gap}))
    return 0 if worst < 1e-5 and loss_gap < 1e-5 else 1


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))

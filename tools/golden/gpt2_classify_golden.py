"""Golden numbers for lrscape's GPT-2 sequence classifier, from
`transformers`' `GPT2ForSequenceClassification`.

Builds the random tiny GPT-2 of fixtures/gpt2/tiny (read with
`from_pretrained`, so the body is that fixture's) with a 3-label `score`
head drawn at a visible scale and `pad_token_id = 0`, saves it as
fixtures/gpt2/tiny-classifier/ (`save_pretrained`: config.json with
`num_labels`, model.safetensors with `score.weight`), and writes
fixtures/gpt2/classify_golden.json: a batch of right-padded token rows
(one without padding, one all padding), the class logits, and the
cross-entropy loss against given labels.

Run: python tools/golden/gpt2_classify_golden.py   (torch, transformers)
"""

import json
import pathlib

import torch
import transformers
from transformers import GPT2ForSequenceClassification

ROOT = pathlib.Path(__file__).resolve().parents[2] / "fixtures" / "gpt2"
PAD = 0


def flat(t):
    return {"shape": list(t.shape), "data": [float(f"{float(v):.8g}") for v in t.detach().reshape(-1)]}


def main():
    model = GPT2ForSequenceClassification.from_pretrained(
        ROOT / "tiny", num_labels=3, pad_token_id=PAD
    ).eval()
    torch.manual_seed(3)
    with torch.no_grad():
        model.score.weight.copy_(0.5 * torch.randn_like(model.score.weight))
    out_dir = ROOT / "tiny-classifier"
    model.save_pretrained(out_dir)
    tokens = torch.tensor(
        [
            [5, 17, 33, 2, 9, 41, 7, 12],  # no padding
            [8, 3, 60, 11, PAD, PAD, PAD, PAD],  # the last real token at 3
            [PAD, PAD, PAD, PAD, PAD, PAD, PAD, PAD],  # all padding: position 0
            [70, PAD, 22, 4, 95, 1, PAD, PAD],  # a pad inside: the last real token, 5
        ]
    )
    labels = torch.tensor([0, 2, 1, 2])
    with torch.no_grad():
        out = model(input_ids=tokens, labels=labels)
    golden = {
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__},
        "pad_token_id": PAD,
        "tokens": tokens.tolist(),
        "labels": labels.tolist(),
        "logits": flat(out.logits),
        "loss": float(out.loss),
    }
    (ROOT / "classify_golden.json").write_text(json.dumps(golden, indent=1) + "\n")


if __name__ == "__main__":
    main()

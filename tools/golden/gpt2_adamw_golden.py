"""Full fine-tuning of GPT-2 against `torch.optim.AdamW`.

Two AdamW steps (lr 1e-2, weight decay 0.01, PyTorch's betas and eps) of the
random tiny GPT-2 of fixtures/gpt2/tiny on a fixed batch, every weight
trained (the tied wte gets the embedding's and the head's gradients), the
causal-LM loss (`labels = input_ids`). Writes the model after the two
steps as fixtures/gpt2/tiny-after-adamw/ (`save_pretrained`) and
fixtures/gpt2/adamw_golden.json (the batch, the settings, the loss before
each step).

Run: python tools/golden/gpt2_adamw_golden.py   (torch, transformers)
"""

import json
import pathlib

import torch
import transformers
from transformers import GPT2LMHeadModel

ROOT = pathlib.Path(__file__).resolve().parents[2] / "fixtures" / "gpt2"
LR, WEIGHT_DECAY = 1e-2, 0.01


def main():
    model = GPT2LMHeadModel.from_pretrained(ROOT / "tiny").eval()
    torch.manual_seed(11)
    tokens = torch.randint(0, model.config.vocab_size, (2, 8))
    opt = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=WEIGHT_DECAY)
    losses = []
    for _ in range(2):
        opt.zero_grad()
        out = model(input_ids=tokens, labels=tokens)
        losses.append(float(out.loss.detach()))
        out.loss.backward()
        opt.step()
    model.save_pretrained(ROOT / "tiny-after-adamw")
    golden = {
        "generator": "tools/golden/gpt2_adamw_golden.py",
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__},
        "lr": LR,
        "weight_decay": WEIGHT_DECAY,
        "tokens": tokens.tolist(),
        "loss_before": losses,
    }
    (ROOT / "adamw_golden.json").write_text(json.dumps(golden, indent=1) + "\n")


if __name__ == "__main__":
    main()

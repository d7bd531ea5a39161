"""Golden numbers for `lrscape eval --data`: labelled text scored by a GPT-2
sequence classifier, with and without a PEFT adapter, as `tokenizers` +
`transformers` + `peft` compute it.

Writes:
- fixtures/text/genesis-labelled.jsonl and .csv: the verses of Genesis 3
  (fixtures/text/genesis-val.txt), each labelled by its length (0: under
  15 words, 1: under 25, 2: longer); genesis-labelled-train.jsonl the same
  for Genesis 1-2;
- fixtures/gpt2/tiny-lm-classifier/: the random tiny GPT-2 of
  fixtures/gpt2/tiny-lm with a 3-label `score` drawn at a visible scale and
  `pad_token_id = 0` (`<|endoftext|>`), its tokenizer.json beside;
- fixtures/gpt2/tiny-lm-classifier-lora/: a PEFT LoRA adapter for it
  (`task_type = "SEQ_CLS"`, r = 4 on c_attn and c_proj, random A and B; the
  `score` head trained beside it as `modules_to_save`, perturbed);
- fixtures/gpt2/text_classify_golden.json: loss (mean cross-entropy),
  accuracy and example count of the base and the adapted model, each text
  tokenized without special tokens, cut to MAX_LENGTH tokens and
  right-padded with the pad id.

Run: python tools/golden/gpt2_text_classify_golden.py   (torch, transformers, peft, tokenizers)
"""

import csv
import json
import os
import pathlib
import shutil

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import peft
import tokenizers
import torch
import transformers
from peft import LoraConfig, get_peft_model
from transformers import GPT2ForSequenceClassification

ROOT = pathlib.Path(__file__).resolve().parents[2]
FIX = ROOT / "fixtures"
MAX_LENGTH = 24
PAD = 0


def by_length(path):
    rows = []
    for verse in path.read_text().splitlines():
        words = len(verse.split())
        rows.append({"text": verse, "label": 0 if words < 15 else 1 if words < 25 else 2})
    return rows


def labelled():
    # Genesis 1-2 for training (configs/gpt2-classify-tiny.toml), 3 to score.
    with open(FIX / "text" / "genesis-labelled-train.jsonl", "w") as f:
        for row in by_length(FIX / "text" / "genesis-train.txt"):
            f.write(json.dumps(row) + "\n")
    rows = by_length(FIX / "text" / "genesis-val.txt")
    with open(FIX / "text" / "genesis-labelled.jsonl", "w") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
    with open(FIX / "text" / "genesis-labelled.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["label", "text"])
        for row in rows:
            writer.writerow([row["label"], row["text"]])
    return rows


def batch(tok, rows):
    ids = []
    for row in rows:
        row_ids = tok.encode(row["text"], add_special_tokens=False).ids[:MAX_LENGTH]
        ids.append(row_ids + [PAD] * (MAX_LENGTH - len(row_ids)))
    return torch.tensor(ids), torch.tensor([row["label"] for row in rows])


def score(model, x, y):
    with torch.no_grad():
        out = model(input_ids=x, labels=y)
    accuracy = float((out.logits.argmax(-1) == y).float().mean())
    return {"loss": float(out.loss), "accuracy": accuracy, "examples": len(y)}


def main():
    rows = labelled()
    tok = tokenizers.Tokenizer.from_file(str(FIX / "gpt2" / "tiny-lm" / "tokenizer.json"))
    x, y = batch(tok, rows)
    model = GPT2ForSequenceClassification.from_pretrained(
        FIX / "gpt2" / "tiny-lm", num_labels=3, pad_token_id=PAD
    ).eval()
    torch.manual_seed(5)
    with torch.no_grad():
        model.score.weight.copy_(0.5 * torch.randn_like(model.score.weight))
    out_dir = FIX / "gpt2" / "tiny-lm-classifier"
    model.save_pretrained(out_dir)
    shutil.copy(FIX / "gpt2" / "tiny-lm" / "tokenizer.json", out_dir / "tokenizer.json")
    base = score(model, x, y)

    config = LoraConfig(
        task_type="SEQ_CLS",
        r=4,
        lora_alpha=8,
        target_modules=["c_attn", "c_proj"],
        fan_in_fan_out=True,
    )
    adapted = get_peft_model(model, config).eval()
    torch.manual_seed(6)
    with torch.no_grad():
        for name, p in adapted.named_parameters():
            if "lora_A" in name or "lora_B" in name:
                p.copy_(0.3 * torch.randn_like(p))
            elif "modules_to_save" in name:
                p.add_(0.5 * torch.randn_like(p))
    adapter_dir = FIX / "gpt2" / "tiny-lm-classifier-lora"
    adapted.save_pretrained(adapter_dir)
    with_adapter = score(adapted, x, y)

    golden = {
        "generator": "tools/golden/gpt2_text_classify_golden.py",
        "versions": {
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "peft": peft.__version__,
            "tokenizers": tokenizers.__version__,
        },
        "max_length": MAX_LENGTH,
        "pad_token_id": PAD,
        "labels": y.tolist(),
        "base": base,
        "lora": with_adapter,
    }
    path = FIX / "gpt2" / "text_classify_golden.json"
    path.write_text(json.dumps(golden, indent=1) + "\n")
    print(f"wrote {path}: {golden['base']} {golden['lora']}")


if __name__ == "__main__":
    main()

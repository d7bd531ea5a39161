"""Golden numbers for lrscape's `instruction` task, from `tokenizers`,
`transformers` and `peft`.

Writes, from Genesis 1-3 of the King James Bible (Debian's `bible-kjv`
package: `apt-get install bible-kjv`):

- fixtures/text/genesis-instructions-train.jsonl (chapters 1-2) and
  genesis-instructions-val.jsonl (3): Alpaca-style examples, most
  "continue this verse" (the verse's first half as `input`, the rest as
  `output`), every third "recite" (no `input`, the verse as `output`)
- fixtures/llama/instruction_golden.json: the response-only loss on the val
  file of the tiny Qwen3 and Llama in fixtures/llama (and of the Qwen3's
  PEFT LoRA adapter), each example built as Stanford Alpaca's training code
  builds it (a prompt template; `labels` = ids with the prompt's
  `len(tokenizer(prompt))` positions at -100; the end-of-text token
  appended), cut to MAX_LENGTH and right-padded with labels -100; the
  loss `transformers` computes over the batch, and the scored tokens

Run: python tools/golden/instruction_golden.py   (torch, transformers, peft,
tokenizers; after tools/golden/llama_golden.py)
"""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import json
import math
import pathlib
import re
import subprocess

import tokenizers
import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM

ROOT = pathlib.Path(__file__).resolve().parents[2] / "fixtures"
MAX_LENGTH = 64
# Alpaca's templates are longer than the tiny models' 64 positions in their
# 320-token BPE: a short one (`task.prompt_template`, `--prompt-template`).
TEMPLATE = "### Instruction: {instruction} {input}\n### Response:"


def verses(spec):
    out = subprocess.run(["bible", "-f", spec], check=True, capture_output=True, text=True).stdout
    found = re.split(r"\n(?=\S+\d+:\d+ )", out.strip())
    return [(re.match(r"\S+?(\d+:\d+) ", v).group(1), " ".join(re.sub(r"^\S+\d+:\d+ ", "", v).split()))
            for v in found]


def examples(spec):
    rows = []
    for i, (where, verse) in enumerate(verses(spec)):
        words = verse.split()
        if i % 3 == 2:
            rows.append({"instruction": f"Recite Genesis {where}.", "output": verse})
        else:
            half = len(words) // 2
            rows.append({"instruction": "Continue this verse of Genesis.",
                         "input": " ".join(words[:half]), "output": " ".join(words[half:])})
    return rows


def batch(rows, tok, eos, pad):
    ids_rows, label_rows = [], []
    for row in rows:
        prompt = TEMPLATE.format(instruction=row["instruction"], input=row.get("input", ""))
        ids = tok.encode(prompt + row["output"]).ids + [eos]
        prompt_len = len(tok.encode(prompt).ids)
        labels = [-100] * prompt_len + ids[prompt_len:]
        ids, labels = ids[:MAX_LENGTH], labels[:MAX_LENGTH]
        ids_rows.append(ids + [pad] * (MAX_LENGTH - len(ids)))
        label_rows.append(labels + [-100] * (MAX_LENGTH - len(labels)))
    return torch.tensor(ids_rows), torch.tensor(label_rows)


def score(model, ids, labels):
    with torch.no_grad():
        loss = float(model(input_ids=ids, labels=labels).loss)
    return {"loss": loss, "perplexity": math.exp(loss), "tokens": int((labels[:, 1:] != -100).sum())}


def main():
    text = ROOT / "text"
    for name, spec in [("train", "gen1:1-gen2:25"), ("val", "gen3:1-gen3:24")]:
        lines = [json.dumps(r) for r in examples(spec)]
        (text / f"genesis-instructions-{name}.jsonl").write_text("\n".join(lines) + "\n")
    rows = [json.loads(l) for l in (text / "genesis-instructions-val.jsonl").read_text().splitlines()]
    golden = {"max_length": MAX_LENGTH, "prompt_template": TEMPLATE}
    for name in ["tiny-qwen3", "tiny-llama"]:
        directory = ROOT / "llama" / name
        tok = tokenizers.Tokenizer.from_file(str(directory / "tokenizer.json"))
        config = json.loads((directory / "config.json").read_text())
        eos = config["eos_token_id"]
        ids, labels = batch(rows, tok, eos, config.get("pad_token_id") or eos)
        model = AutoModelForCausalLM.from_pretrained(directory).eval()
        golden[name] = {"base": score(model, ids, labels)}
        if name == "tiny-qwen3":
            adapter = ROOT / "llama" / "tiny-qwen3-adapters" / "lora"
            adapted = PeftModel.from_pretrained(model, adapter).eval()
            golden[name]["lora"] = score(adapted, ids, labels)
    (ROOT / "llama" / "instruction_golden.json").write_text(json.dumps(golden) + "\n")


if __name__ == "__main__":
    main()

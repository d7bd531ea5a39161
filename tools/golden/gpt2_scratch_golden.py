"""A GPT-2 lrscape pre-trained itself, as `transformers` reads it.

Runs `lrscape pretrain` on fixtures/gpt2/scratch.toml (a 300-token BPE and a
2-layer GPT-2 trained on Genesis 1-2), copies the base's Hugging Face
directory (config.json, model.safetensors, tokenizer.json) to
fixtures/gpt2/scratch-base/, and writes fixtures/gpt2/scratch_golden.json:
the `text_lm` score of Genesis 3 in blocks of 32 as `tokenizers` +
`transformers` compute it (tools/golden/peft_text_eval.py's convention).
The test suite checks `lrscape eval` on the committed directory against it.

Run: python tools/golden/gpt2_scratch_golden.py [LRSCAPE_BINARY]
     (needs torch, transformers and tokenizers; the binary defaults to
     `cargo run --release -p lrscape --`)
"""

import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import tokenizers
import torch
import transformers
from transformers import GPT2LMHeadModel

ROOT = pathlib.Path(__file__).resolve().parents[2]
BLOCK = 32
VAL = ROOT / "fixtures" / "text" / "genesis-val.txt"
BASE = ROOT / "fixtures" / "gpt2" / "scratch-base"


def pretrain(binary, out):
    command = binary + ["pretrain", "--config", str(ROOT / "fixtures/gpt2/scratch.toml"), "--out", str(out)]
    subprocess.run(command, check=True, cwd=ROOT)
    (base,) = (out / "base").iterdir()
    return base / "hf"


def score(model_dir):
    tok = tokenizers.Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    ids = tok.encode(VAL.read_text(), add_special_tokens=False).ids
    n = len(ids) // BLOCK
    x = torch.tensor(ids[: n * BLOCK]).reshape(n, BLOCK)
    model = GPT2LMHeadModel.from_pretrained(model_dir).eval()
    with torch.no_grad():
        loss = float(model(input_ids=x, labels=x).loss)
    return {"loss": loss, "tokens": n * (BLOCK - 1), "first_ids": ids[:16]}


def main():
    binary = sys.argv[1:] or ["cargo", "run", "--quiet", "--release", "--package", "lrscape", "--"]
    with tempfile.TemporaryDirectory() as tmp:
        hf = pretrain(binary, pathlib.Path(tmp))
        shutil.rmtree(BASE, ignore_errors=True)
        shutil.copytree(hf, BASE)
    out = {
        "generator": "tools/golden/gpt2_scratch_golden.py",
        "torch_version": torch.__version__,
        "transformers_version": transformers.__version__,
        "tokenizers_version": tokenizers.__version__,
        "text": "fixtures/text/genesis-val.txt",
        "block_size": BLOCK,
        **score(BASE),
    }
    path = ROOT / "fixtures" / "gpt2" / "scratch_golden.json"
    path.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {BASE} and {path}")


if __name__ == "__main__":
    main()

"""Golden numbers for lrscape's text path on a tiny GPT-2, from
`tokenizers`, `transformers` and `peft`.

Writes, from Genesis 1-3 of the King James Bible (Debian's `bible-kjv`
package: `apt-get install bible-kjv`):

- fixtures/text/genesis-train.txt (chapters 1-2), genesis-val.txt (3)
- fixtures/gpt2/tiny-lm/: a byte-level BPE `tokenizer.json` (320 tokens)
  trained on the train text by `tokenizers`, and a random tiny
  `GPT2LMHeadModel` of that vocabulary (`save_pretrained`)
- fixtures/gpt2/tiny-lm-adapters/{lora,rslora,dora}/: PEFT adapters on
  c_attn, c_proj, c_fc with every factor drawn non-zero, as
  `PeftModel.save_pretrained` writes them
- fixtures/gpt2/text_golden.json: the val text's ids, and the `text_lm`
  loss of the model and of each adapter: blocks of BLOCK tokens, each
  scored by `transformers` with `labels = input_ids`, averaged

Run: python tools/golden/gpt2_text_golden.py   (torch, transformers, peft,
tokenizers)
"""

import os

# PEFT looks the base model's name up on the hub when saving; there is none.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import json
import math
import pathlib
import re
import subprocess

import peft
import tokenizers
import torch
import transformers
from peft import LoraConfig, PeftModel, get_peft_model
from tokenizers import ByteLevelBPETokenizer
from transformers import GPT2Config, GPT2LMHeadModel

ROOT = pathlib.Path(__file__).resolve().parents[2] / "fixtures"
VOCAB = 320
BLOCK = 16
ADAPTERS = {
    "lora": dict(r=4, lora_alpha=8),
    "rslora": dict(r=4, lora_alpha=8, use_rslora=True),
    "dora": dict(r=4, lora_alpha=8, use_dora=True),
}


def chapters(spec):
    out = subprocess.run(["bible", "-f", spec], check=True, capture_output=True, text=True).stdout
    # Each verse is "Ge1:1 text", continued on indented lines.
    verses = re.split(r"\n(?=\S+\d+:\d+ )", out.strip())
    return "\n".join(" ".join(re.sub(r"^\S+\d+:\d+ ", "", v).split()) for v in verses) + "\n"


def blocks(ids):
    n = len(ids) // BLOCK
    return torch.tensor(ids[: n * BLOCK]).reshape(n, BLOCK)


def text_lm_loss(m, ids):
    with torch.no_grad():
        x = blocks(ids)
        return float(m(input_ids=x, labels=x).loss), x.shape[0] * (BLOCK - 1)


def main():
    text_dir = ROOT / "text"
    text_dir.mkdir(parents=True, exist_ok=True)
    train, val = chapters("gen1:1-gen2:25"), chapters("gen3:1-gen3:24")
    (text_dir / "genesis-train.txt").write_text(train)
    (text_dir / "genesis-val.txt").write_text(val)

    model_dir = ROOT / "gpt2" / "tiny-lm"
    model_dir.mkdir(parents=True, exist_ok=True)
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator([train], vocab_size=VOCAB, min_frequency=2, special_tokens=["<|endoftext|>"])
    bpe.save(str(model_dir / "tokenizer.json"))
    tok = tokenizers.Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    val_ids = tok.encode(val, add_special_tokens=False).ids

    torch.manual_seed(1)
    config = GPT2Config(
        vocab_size=tok.get_vocab_size(),
        n_positions=64,
        n_embd=32,
        n_layer=2,
        n_head=4,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        bos_token_id=0,
        eos_token_id=0,
    )
    model = GPT2LMHeadModel(config).eval()
    model.save_pretrained(model_dir)
    (model_dir / "generation_config.json").unlink()
    loss, tokens = text_lm_loss(model, val_ids)
    golden = {
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                     "peft": peft.__version__, "tokenizers": tokenizers.__version__},
        "block_size": BLOCK,
        "val_ids": val_ids,
        "base": {"loss": loss, "perplexity": math.exp(loss), "tokens": tokens},
        "adapters": {},
    }
    for i, (name, settings) in enumerate(ADAPTERS.items()):
        base = GPT2LMHeadModel.from_pretrained(model_dir).eval()
        # The name adapter_config.json records, instead of this machine's path.
        base.name_or_path = base.config.name_or_path = "tiny-lm"
        cfg = LoraConfig(target_modules=["c_attn", "c_proj", "c_fc"], lora_dropout=0.0,
                         fan_in_fan_out=True, **settings)
        m = get_peft_model(base, cfg)
        torch.manual_seed(10 + i)
        with torch.no_grad():
            for n, p in m.named_parameters():
                if "lora_" in n:
                    p.copy_(0.2 * torch.randn_like(p))
                elif "magnitude" in n:
                    p.mul_(1.0 + 0.1 * torch.randn_like(p))
        out = ROOT / "gpt2" / "tiny-lm-adapters" / name
        m.save_pretrained(out)
        (out / "README.md").unlink()  # PEFT's model card template: not needed
        # What a user gets: the saved adapter loaded on the untouched base.
        fresh = GPT2LMHeadModel.from_pretrained(model_dir).eval()
        loaded = PeftModel.from_pretrained(fresh, out).eval()
        loss, tokens = text_lm_loss(loaded, val_ids)
        golden["adapters"][name] = {"loss": loss, "perplexity": math.exp(loss), "tokens": tokens}
    (ROOT / "gpt2" / "text_golden.json").write_text(json.dumps(golden) + "\n")


if __name__ == "__main__":
    main()

"""Greedy generation golden for lrscape's KV-cache decoding, from
`transformers` and `peft`.

For the tiny Llama, Qwen2 and Qwen3 of fixtures/llama (and the Qwen3 with
its PEFT LoRA adapter), the ids `model.generate(do_sample=False,
max_new_tokens=NEW)` appends to a few prompts (Genesis verses tokenized by
the model's tokenizer), each prompt alone (no padding); generation stops
after the end-of-text token. Writes fixtures/llama/generate_golden.json;
the same for the tiny GPT-2 of fixtures/gpt2/tiny-lm (and its PEFT LoRA
adapter) to fixtures/gpt2/generate_golden.json.

And scoring by generation end to end: the tiny Qwen3 generates after each
prompt of fixtures/text/genesis-instructions-val.jsonl (the template of
tools/golden/instruction_golden.py, prompts cut to MAX_LENGTH tokens); the
answer in each decoded text is found as GSM8K scoring finds it (the number
after `####`, else the last number; commas dropped). Writes
fixtures/text/genesis-answers-val.jsonl: those examples with outputs
`#### <answer>` where every other one's generated answer exists (so they
agree) and `#### 99999` elsewhere, and the share that agrees to
generate_golden.json.

Run: python tools/golden/generate_golden.py   (torch, transformers, peft,
tokenizers; after tools/golden/llama_golden.py)
"""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import json
import pathlib
import re

import tokenizers
import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM

ROOT = pathlib.Path(__file__).resolve().parents[2] / "fixtures" / "llama"
TEXT = ROOT.parent / "text"
NEW = 16
MAX_LENGTH = 48
TEMPLATE = "### Instruction: {instruction} {input}\n### Response:"


def answer(text):
    """GSM8K's rule: the number after the last ####, else the last number."""
    number = r"-?\d(?:,?\d)*(?:\.\d+)?"
    if "####" in text:
        found = re.findall(number, text.rsplit("####", 1)[1])
        return found[0].replace(",", "") if found else None
    found = re.findall(number, text)
    return found[-1].replace(",", "") if found else None


def answers(golden):
    directory = ROOT / "tiny-qwen3"
    tok = tokenizers.Tokenizer.from_file(str(directory / "tokenizer.json"))
    model = AutoModelForCausalLM.from_pretrained(directory).eval()
    rows = [json.loads(l) for l in (TEXT / "genesis-instructions-val.jsonl").read_text().splitlines()]
    out, agree = [], 0
    for i, row in enumerate(rows):
        prompt = TEMPLATE.format(instruction=row["instruction"], input=row.get("input", ""))
        ids = torch.tensor([tok.encode(prompt).ids[:MAX_LENGTH]])
        with torch.no_grad():
            new = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids),
                                 max_new_tokens=NEW, do_sample=False, eos_token_id=0,
                                 pad_token_id=0)[0, ids.shape[1]:].tolist()
        said = answer(tok.decode(new, skip_special_tokens=False))
        if i % 2 == 0 and said is not None:
            row = dict(row, output=f"{row['output']} #### {said}")
            agree += 1
        else:
            row = dict(row, output=f"{row['output']} #### 99999")
        out.append(json.dumps(row))
    (TEXT / "genesis-answers-val.jsonl").write_text("\n".join(out) + "\n")
    golden["answers"] = {"max_length": MAX_LENGTH, "max_new_tokens": NEW,
                         "prompt_template": TEMPLATE, "exact_match": agree / len(rows),
                         "examples": len(rows)}
PROMPTS = ["In the beginning God created", "And the earth was without form,", "Let there be"]


def main():
    golden = {"max_new_tokens": NEW, "prompts": PROMPTS}
    generations(golden, ROOT, [("tiny-llama", None), ("tiny-qwen2", None), ("tiny-qwen3", None),
                               ("tiny-qwen3", "lora")])
    answers(golden)
    (ROOT / "generate_golden.json").write_text(json.dumps(golden) + "\n")
    gpt2 = {"max_new_tokens": NEW, "prompts": PROMPTS}
    generations(gpt2, ROOT.parent / "gpt2", [("tiny-lm", None), ("tiny-lm", "lora")])
    (ROOT.parent / "gpt2" / "generate_golden.json").write_text(json.dumps(gpt2) + "\n")


def generations(golden, root, cases):
    for name, adapter in cases:
        directory = root / name
        tok = tokenizers.Tokenizer.from_file(str(directory / "tokenizer.json"))
        model = AutoModelForCausalLM.from_pretrained(directory).eval()
        if adapter:
            model = PeftModel.from_pretrained(model, root / f"{name}-adapters" / adapter).eval()
        eos = json.loads((directory / "config.json").read_text())["eos_token_id"]
        outputs = []
        for prompt in PROMPTS:
            ids = torch.tensor([tok.encode(prompt).ids])
            with torch.no_grad():
                out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids),
                                     max_new_tokens=NEW, do_sample=False, eos_token_id=eos,
                                     pad_token_id=eos)
            outputs.append({"prompt": ids[0].tolist(), "new": out[0, ids.shape[1]:].tolist()})
        golden[name if adapter is None else f"{name}+{adapter}"] = outputs


if __name__ == "__main__":
    main()

"""The `text_lm` score of a Hugging Face causal-LM directory (GPT-2, Llama,
Qwen2, Qwen3), with a PEFT adapter directory on it if given, as
`transformers` + `peft` compute it: the text tokenized whole without
special tokens by the model's tokenizer.json, cut into blocks of BLOCK
tokens (remainder dropped), each scored with `labels = input_ids`,
averaged. Prints one JSON line {"loss", "perplexity", "tokens"}: what
`lrscape eval` prints.

Run: python tools/golden/peft_text_eval.py MODEL_DIR TEXT BLOCK [ADAPTER_DIR]
"""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import json
import math
import pathlib
import sys

import tokenizers
import torch
from transformers import AutoModelForCausalLM


def main(model_dir, text, block, adapter=None):
    tok = tokenizers.Tokenizer.from_file(str(pathlib.Path(model_dir) / "tokenizer.json"))
    ids = tok.encode(pathlib.Path(text).read_text(), add_special_tokens=False).ids
    n = len(ids) // block
    x = torch.tensor(ids[: n * block]).reshape(n, block)
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    if adapter:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, adapter).eval()
    with torch.no_grad():
        loss = float(model(input_ids=x, labels=x).loss)
    print(json.dumps({"loss": loss, "perplexity": math.exp(loss), "tokens": n * (block - 1)}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] if len(sys.argv) > 4 else None)

"""The classification score of a Hugging Face GPT-2 or encoder (DistilBERT,
BERT) directory, with a PEFT adapter directory on it if given, as
`transformers` + `peft` compute it: labelled texts (JSONL, or CSV with a
header) tokenized by the model's tokenizer.json, cut to MAX_LENGTH tokens
and right-padded with the pad id (`pad_token_id`, else `eos_token_id`).
GPT-2: without special tokens, `GPT2ForSequenceClassification` reading
each row's last real token. An encoder: with `[CLS] … [SEP]`
(`truncation=True`) and the tokenizer's attention mask. A directory
without a classification head gets the adapter's (its label count from
the adapter's `score` or `classifier`). Prints one JSON line {"loss",
"accuracy", "examples"}: what `lrscape eval --data` prints.

Run: python tools/golden/peft_classify_eval.py MODEL_DIR DATA MAX_LENGTH [ADAPTER_DIR]
"""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import csv
import json
import pathlib
import sys

import tokenizers
import torch
from safetensors import safe_open
from transformers import (AutoModelForSequenceClassification, GPT2ForSequenceClassification,
                          PreTrainedTokenizerFast)


def rows(path):
    path = pathlib.Path(path)
    if path.suffix == ".csv":
        with open(path, newline="") as f:
            return [{"text": r["text"], "label": int(r["label"])} for r in csv.DictReader(f)]
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def main(model_dir, data, max_length, adapter=None):
    model_dir = pathlib.Path(model_dir)
    config = json.loads((model_dir / "config.json").read_text())
    pad = config.get("pad_token_id", config.get("eos_token_id"))
    labels = None
    if adapter:
        with safe_open(str(pathlib.Path(adapter) / "adapter_model.safetensors"), "pt") as f:
            for key in ("base_model.model.score.weight", "base_model.model.classifier.weight"):
                if key in f.keys():
                    labels = f.get_tensor(key).shape[0]
    kwargs = {"pad_token_id": pad}
    if labels is not None:
        kwargs["num_labels"] = labels
    encoder = config["model_type"] != "gpt2"
    model_class = AutoModelForSequenceClassification if encoder else GPT2ForSequenceClassification
    model = model_class.from_pretrained(model_dir, **kwargs).eval()
    if adapter:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, adapter).eval()
    examples = rows(data)
    y = torch.tensor([e["label"] for e in examples])
    if encoder:
        tok = PreTrainedTokenizerFast(tokenizer_file=str(model_dir / "tokenizer.json"),
                                      pad_token="[PAD]")
        enc = tok([e["text"] for e in examples], truncation=True, max_length=max_length,
                  padding=True, return_tensors="pt")
        inputs = {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}
    else:
        tok = tokenizers.Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        ids = []
        for example in examples:
            row = tok.encode(example["text"], add_special_tokens=False).ids[:max_length]
            ids.append(row + [pad] * (max_length - len(row)))
        inputs = {"input_ids": torch.tensor(ids)}
    with torch.no_grad():
        out = model(**inputs, labels=y)
    accuracy = float((out.logits.argmax(-1) == y).double().mean())
    print(json.dumps({"loss": float(out.loss), "accuracy": accuracy, "examples": len(y)}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), *sys.argv[4:5])

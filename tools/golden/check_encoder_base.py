"""Reads an encoder base lrscape pre-trained (a `*ForMaskedLM` Hugging Face
directory with its WordPiece `tokenizer.json`) with `transformers`: as
`AutoModelForMaskedLM` and as `AutoModelForSequenceClassification` (a new
head of NUM_LABELS). Prints one JSON line: TEXT's ids as the tokenizer
encodes it (`[CLS] … [SEP]`), the masked LM's logits at every position
(flat), and the classifier's label count.

Run: python tools/golden/check_encoder_base.py DIR TEXT NUM_LABELS
"""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import json
import pathlib
import sys

import torch
from transformers import (AutoModelForMaskedLM, AutoModelForSequenceClassification,
                          PreTrainedTokenizerFast)


def main(directory, text, num_labels):
    directory = pathlib.Path(directory)
    tok = PreTrainedTokenizerFast(tokenizer_file=str(directory / "tokenizer.json"),
                                  pad_token="[PAD]")
    ids = tok(text, return_tensors="pt")["input_ids"]
    mlm = AutoModelForMaskedLM.from_pretrained(directory).eval()
    classifier = AutoModelForSequenceClassification.from_pretrained(
        directory, num_labels=int(num_labels)).eval()
    with torch.no_grad():
        logits = mlm(input_ids=ids).logits
        classes = classifier(input_ids=ids).logits
    print(json.dumps({"ids": ids[0].tolist(), "logits": logits.reshape(-1).tolist(),
                      "num_labels": classes.shape[-1]}))


if __name__ == "__main__":
    main(*sys.argv[1:4])

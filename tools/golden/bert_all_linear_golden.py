"""A PEFT `all-linear` adapter on the committed tiny BERT classifier.

PEFT 0.21.2 resolves `target_modules="all-linear"` on a
`BertForSequenceClassification` with `task_type="SEQ_CLS"` to every block
linear and the pooler's `bert.pooler.dense` (LoRA factors on it, its base
frozen), and saves only `classifier` whole (`modules_to_save`). On
DistilBERT it cannot: the default entry `classifier` matches
`pre_classifier` as a suffix, so PEFT wraps that module in
`modules_to_save` and refuses to also adapt it.

Reads fixtures/bert/tiny-bert-classifier (made by bert_golden.py, whose
pooler the adapter's frozen base is) and writes:

- fixtures/bert/tiny-bert-classifier-adapters/all_linear/: the adapter,
  every factor and the saved classifier drawn non-zero;
- its loss and accuracy on fixtures/text/genesis-labelled.jsonl
  (max_length 16), added to fixtures/bert/text_classify_golden.json.

Run after bert_golden.py (which rewrites that file):
python tools/golden/bert_all_linear_golden.py
"""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import json
import shutil
import sys

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from transformers import AutoTokenizer, BertForSequenceClassification

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent))
from bert_golden import ROOT, examples, scored  # noqa: E402

BASE = ROOT / "tiny-bert-classifier"
OUT = ROOT / "tiny-bert-classifier-adapters" / "all_linear"


def main():
    tokenizer = AutoTokenizer.from_pretrained(BASE)
    texts, labels = examples()
    model = BertForSequenceClassification.from_pretrained(BASE).eval()
    lora = LoraConfig(task_type="SEQ_CLS", r=4, lora_alpha=8, target_modules="all-linear")
    peft_model = get_peft_model(model, lora)
    adapted = [n for n, _ in peft_model.named_modules() if n.endswith("pooler.dense.lora_A")]
    assert adapted, "PEFT no longer adapts the pooler under all-linear"
    g = torch.Generator().manual_seed(300)
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_" in name or "modules_to_save" in name:
                p.copy_(0.2 * torch.randn(p.shape, generator=g))
    shutil.rmtree(OUT, ignore_errors=True)
    peft_model.save_pretrained(OUT)
    fresh = BertForSequenceClassification.from_pretrained(BASE).eval()
    loaded = PeftModel.from_pretrained(fresh, OUT).eval()
    golden_path = ROOT / "text_classify_golden.json"
    golden = json.loads(golden_path.read_text())
    golden["scores"]["tiny-bert-classifier-adapters/all_linear"] = scored(
        loaded, tokenizer, texts, labels)
    golden_path.write_text(json.dumps(golden, indent=1) + "\n")


if __name__ == "__main__":
    main()

"""Golden numbers for lrscape's `bert` family (encoders), from `transformers`
and `peft`.

Trains a 256-token WordPiece vocabulary (BERT's normalizer, pre-tokenizer
and `[CLS] … [SEP]` post-processing) on fixtures/text/genesis-train.txt
with the `tokenizers` library, then builds tiny encoders from configs with
random weights (no hub), every weight, bias and norm drawn away from HF's
trivial init:

- fixtures/bert/tiny-distilbert/: `DistilBertForMaskedLM` (a base without a
  classification head, as `distilbert-base-uncased` is)
- fixtures/bert/tiny-distilbert-classifier/:
  `DistilBertForSequenceClassification`, 3 labels
- fixtures/bert/tiny-bert/: `BertForMaskedLM` (its pooler saved too)
- fixtures/bert/tiny-bert-classifier/: `BertForSequenceClassification`,
  3 labels, 4 heads of width 8

And:

- fixtures/bert/golden.json: a padded batch of fixtures/text/genesis-labelled
  texts (`truncation=True, max_length=16`), each classifier's logits and
  loss, each masked LM's logits
- fixtures/bert/tiny-{distilbert,bert}-adapters/<name>/: `SEQ_CLS` PEFT
  adapters on the masked LM's body with every factor drawn non-zero and the
  classification head in `modules_to_save`, as `save_pretrained` writes
  them
- fixtures/bert/text_classify_golden.json: loss and accuracy on
  fixtures/text/genesis-labelled.jsonl (max_length 16) of each classifier and
  of each adapter on its base

Run: python tools/golden/bert_golden.py   (torch, transformers, peft,
tokenizers)
"""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import json
import pathlib
import shutil

import peft
import tokenizers
import torch
import transformers
from peft import LoraConfig, PeftModel, get_peft_model
from tokenizers import models, normalizers, pre_tokenizers, processors, trainers
from transformers import (BertConfig, BertForMaskedLM, BertForSequenceClassification,
                          DistilBertConfig, DistilBertForMaskedLM,
                          DistilBertForSequenceClassification, PreTrainedTokenizerFast)

FIXTURES = pathlib.Path(__file__).resolve().parents[2] / "fixtures"
ROOT = FIXTURES / "bert"
CORPUS = FIXTURES / "text" / "genesis-train.txt"
LABELLED = FIXTURES / "text" / "genesis-labelled.jsonl"
MAX_LENGTH, LABELS, VOCAB = 16, 3, 256
SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]

DISTIL = dict(vocab_size=VOCAB, max_position_embeddings=64, n_layers=2, n_heads=2, dim=32,
              hidden_dim=48, pad_token_id=0, num_labels=LABELS)
BERT = dict(vocab_size=VOCAB, max_position_embeddings=64, num_hidden_layers=2,
            num_attention_heads=4, hidden_size=32, intermediate_size=48, type_vocab_size=2,
            layer_norm_eps=1e-12, pad_token_id=0, num_labels=LABELS)
MODELS = {
    "tiny-distilbert": (DistilBertForMaskedLM, DistilBertConfig, DISTIL),
    "tiny-distilbert-classifier": (DistilBertForSequenceClassification, DistilBertConfig, DISTIL),
    "tiny-bert": (BertForMaskedLM, BertConfig, BERT),
    "tiny-bert-classifier": (BertForSequenceClassification, BertConfig, BERT),
}
# target_modules and modules_to_save as a user sets them for each body.
ADAPTERS = {
    "tiny-distilbert": (DistilBertForSequenceClassification, DistilBertConfig, DISTIL, {
        "lora": dict(r=4, lora_alpha=8, target_modules=["q_lin", "v_lin"]),
        "dora": dict(r=4, lora_alpha=8, use_dora=True, target_modules=["q_lin", "k_lin", "v_lin",
                                                                       "out_lin", "lin1", "lin2"]),
    }, ["pre_classifier", "classifier"]),
    "tiny-bert": (BertForSequenceClassification, BertConfig, BERT, {
        "lora": dict(r=4, lora_alpha=8, target_modules=["query", "value"]),
        "rslora": dict(r=4, lora_alpha=8, use_rslora=True,
                       target_modules=["query", "key", "value", "dense"]),
    }, ["pooler", "classifier"]),
}


def flat(t):
    return {"shape": list(t.shape), "data": [float(f"{float(v):.8g}") for v in t.detach().reshape(-1)]}


def wordpiece():
    tok = tokenizers.Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.WordPieceTrainer(vocab_size=VOCAB, special_tokens=SPECIAL)
    tok.train([str(CORPUS)], trainer)
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls), ("[SEP]", sep)])
    tok.decoder = tokenizers.decoders.WordPiece()
    assert tok.get_vocab_size() == VOCAB, tok.get_vocab_size()
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", sep_token="[SEP]",
                                   pad_token="[PAD]", cls_token="[CLS]", mask_token="[MASK]",
                                   model_max_length=64)


def perturb(model, seed):
    """Moves every norm and bias off 1 and 0 (HF's init would hide them)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "LayerNorm" in name or "layer_norm" in name or name.endswith("bias"):
                p.add_(0.1 * torch.randn(p.shape, generator=g))


def examples():
    rows = [json.loads(line) for line in LABELLED.read_text().splitlines() if line.strip()]
    return [r["text"] for r in rows], torch.tensor([r["label"] for r in rows])


def scored(model, tokenizer, texts, labels):
    enc = tokenizer(texts, truncation=True, max_length=MAX_LENGTH, padding=True,
                    return_tensors="pt")
    with torch.no_grad():
        out = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"],
                    labels=labels)
    accuracy = (out.logits.argmax(-1) == labels).float().mean().item()
    return {"loss": out.loss.item(), "accuracy": accuracy, "examples": len(texts)}


def main():
    shutil.rmtree(ROOT, ignore_errors=True)
    ROOT.mkdir(parents=True)
    tokenizer = wordpiece()
    # Saved before any call sets padding or truncation in the file.
    tokenizer.save_pretrained(ROOT / "tokenizer")
    texts, labels = examples()
    # A short text (padded) between two that are cut.
    batch_texts = [texts[0], "And God said, Let there be light.", texts[1]]
    batch_labels = torch.tensor([labels[0].item(), 0, labels[1].item()])
    enc = tokenizer(batch_texts, truncation=True, max_length=MAX_LENGTH, padding=True,
                    return_tensors="pt")
    golden = {"versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                           "peft": peft.__version__, "tokenizers": tokenizers.__version__},
              "max_length": MAX_LENGTH, "texts": batch_texts,
              "input_ids": enc["input_ids"].tolist(),
              "attention_mask": enc["attention_mask"].tolist(),
              "labels": batch_labels.tolist(), "models": {}}
    # The batch must pad one text and cut another.
    assert min(enc["attention_mask"].sum(-1)) < MAX_LENGTH
    assert max(len(tokenizer(t)["input_ids"]) for t in batch_texts) > MAX_LENGTH
    scores = {}
    for seed, (name, (cls, config_cls, kwargs)) in enumerate(MODELS.items()):
        torch.manual_seed(seed)
        model = cls(config_cls(**kwargs)).eval()
        perturb(model, 100 + seed)
        out_dir = ROOT / name
        model.save_pretrained(out_dir, safe_serialization=True)
        for file in (ROOT / "tokenizer").iterdir():
            shutil.copy(file, out_dir / file.name)
        with torch.no_grad():
            if "classifier" in name:
                out = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"],
                            labels=batch_labels)
                golden["models"][name] = {"logits": flat(out.logits), "loss": out.loss.item()}
                scores[name] = scored(model, tokenizer, texts, labels)
            else:
                out = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"])
                golden["models"][name] = {"logits": flat(out.logits)}
    for base, (cls, config_cls, kwargs, adapters, heads) in ADAPTERS.items():
        for i, (name, options) in enumerate(adapters.items()):
            model = cls.from_pretrained(ROOT / base, num_labels=LABELS).eval()
            lora = LoraConfig(task_type="SEQ_CLS", modules_to_save=heads, **options)
            peft_model = get_peft_model(model, lora)
            g = torch.Generator().manual_seed(200 + i)
            with torch.no_grad():
                for pname, p in peft_model.named_parameters():
                    if "lora_" in pname or "modules_to_save" in pname:
                        p.copy_(0.2 * torch.randn(p.shape, generator=g))
            out_dir = ROOT / f"{base}-adapters" / name
            peft_model.save_pretrained(out_dir)
            # Read back on an untouched base, as a user loads it.
            fresh = cls.from_pretrained(ROOT / base, num_labels=LABELS).eval()
            loaded = PeftModel.from_pretrained(fresh, out_dir).eval()
            scores[f"{base}-adapters/{name}"] = scored(loaded, tokenizer, texts, labels)
    shutil.rmtree(ROOT / "tokenizer")
    (ROOT / "golden.json").write_text(json.dumps(golden, indent=1) + "\n")
    (ROOT / "text_classify_golden.json").write_text(json.dumps(
        {"data": "fixtures/text/genesis-labelled.jsonl", "max_length": MAX_LENGTH,
         "scores": scores}, indent=1) + "\n")


if __name__ == "__main__":
    main()

"""Golden numbers for lrscape's `llama` family, from `transformers` and `peft`.

Builds three tiny checkpoints of Llama's layout from configs with random
weights (no hub), each weight, bias and norm drawn away from HF's trivial
init (norms at 1 and biases at 0 would hide mistakes in them):

- fixtures/llama/tiny-llama/: `LlamaForCausalLM`, grouped-query attention
  (4 query heads, 2 key/value heads), an untied head, an MLP width that is
  not 4·d, Llama 3's `rope_scaling` ("llama3")
- fixtures/llama/tiny-qwen2/: `Qwen2ForCausalLM`, one key/value head, q/k/v
  biases, a tied head, `rope_theta` 1e6
- fixtures/llama/tiny-qwen3/: `Qwen3ForCausalLM`, per-head q/k RMSNorm,
  `head_dim` 16 with 4 heads of a width-32 model, a tied head
- fixtures/llama/tiny-qwen3-bf16-sharded/: the Qwen3 model in bfloat16,
  saved in shards

Each directory holds the 320-token byte-level BPE of fixtures/gpt2/tiny-lm
as its `tokenizer.json`. And:

- fixtures/llama/golden.json: a token batch, each model's logits and
  causal-LM loss (`labels = input_ids`); the bf16 one computed from its
  weights cast back to float32
- fixtures/llama/tiny-{llama,qwen3}-adapters/<name>/: PEFT adapters on every
  linear (`target_modules="all-linear"`) with every factor drawn non-zero,
  as `PeftModel.save_pretrained` writes them
- fixtures/llama/text_golden.json: the `text_lm` loss on
  fixtures/text/genesis-val.txt (blocks of 16 tokens) of each base and of
  each adapter loaded on its untouched base

Run: python tools/golden/llama_golden.py   (torch, transformers, peft,
tokenizers)
"""

import os

# PEFT looks the base model's name up on the hub when saving; there is none.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import json
import math
import pathlib
import shutil

import peft
import tokenizers
import torch
import transformers
from peft import LoraConfig, PeftModel, get_peft_model
from transformers import (LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM,
                          Qwen3Config, Qwen3ForCausalLM)

FIXTURES = pathlib.Path(__file__).resolve().parents[2] / "fixtures"
ROOT = FIXTURES / "llama"
TOKENIZER = FIXTURES / "gpt2" / "tiny-lm" / "tokenizer.json"
BATCH, SEQ, BLOCK = 3, 12, 16
COMMON = dict(vocab_size=320, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
              max_position_embeddings=64, bos_token_id=0, eos_token_id=0)
MODELS = {
    "tiny-llama": (LlamaForCausalLM, LlamaConfig(
        **COMMON, intermediate_size=48, num_key_value_heads=2, rms_norm_eps=1e-6,
        tie_word_embeddings=False, rope_theta=10000.0,
        rope_scaling=dict(rope_type="llama3", factor=8.0, low_freq_factor=1.0,
                          high_freq_factor=4.0, original_max_position_embeddings=16))),
    "tiny-qwen2": (Qwen2ForCausalLM, Qwen2Config(
        **COMMON, intermediate_size=64, num_key_value_heads=1, rms_norm_eps=1e-6,
        tie_word_embeddings=True, rope_theta=1e6)),
    "tiny-qwen3": (Qwen3ForCausalLM, Qwen3Config(
        **COMMON, intermediate_size=64, num_key_value_heads=2, head_dim=16, rms_norm_eps=1e-6,
        tie_word_embeddings=True, rope_theta=1e6)),
}
ADAPTERS = {
    "tiny-llama": {"lora": dict(r=4, lora_alpha=8), "rslora": dict(r=4, lora_alpha=8, use_rslora=True)},
    "tiny-qwen3": {"lora": dict(r=4, lora_alpha=8), "dora": dict(r=4, lora_alpha=8, use_dora=True)},
}


def flat(t):
    return {"shape": list(t.shape), "data": [float(f"{float(v):.8g}") for v in t.detach().reshape(-1)]}


def model(name, seed):
    cls, config = MODELS[name]
    torch.manual_seed(seed)
    m = cls(config).eval()
    with torch.no_grad():
        for n, p in m.named_parameters():
            if n.endswith("norm.weight"):
                p.copy_(1.0 + 0.2 * torch.randn_like(p))
            elif n.endswith("bias"):
                p.copy_(0.1 * torch.randn_like(p))
            else:
                p.copy_(0.3 * torch.randn_like(p))
    return m


def outputs(m, tokens):
    with torch.no_grad():
        out = m(input_ids=tokens, labels=tokens)
    return {"logits": flat(out.logits), "loss": float(out.loss)}


def save(m, out, **kwargs):
    if out.exists():
        shutil.rmtree(out)
    m.save_pretrained(out, **kwargs)
    (out / "generation_config.json").unlink(missing_ok=True)
    shutil.copy(TOKENIZER, out / "tokenizer.json")


def text_lm_loss(m, ids):
    n = len(ids) // BLOCK
    x = torch.tensor(ids[: n * BLOCK]).reshape(n, BLOCK)
    with torch.no_grad():
        loss = float(m(input_ids=x, labels=x).loss)
    return {"loss": loss, "perplexity": math.exp(loss), "tokens": n * (BLOCK - 1)}


def adapters(name, val_ids):
    cls = MODELS[name][0]
    out = {}
    for i, (adapter, settings) in enumerate(ADAPTERS[name].items()):
        base = cls.from_pretrained(ROOT / name).eval()
        # The name adapter_config.json records, instead of this machine's path.
        base.name_or_path = base.config.name_or_path = name
        m = get_peft_model(base, LoraConfig(target_modules="all-linear", lora_dropout=0.0, **settings))
        torch.manual_seed(20 + i)
        with torch.no_grad():
            for n, p in m.named_parameters():
                if "lora_" in n:
                    p.copy_(0.2 * torch.randn_like(p))
                elif "magnitude" in n:
                    p.mul_(1.0 + 0.1 * torch.randn_like(p))
        path = ROOT / f"{name}-adapters" / adapter
        if path.exists():
            shutil.rmtree(path)
        m.save_pretrained(path)
        (path / "README.md").unlink()  # PEFT's model card template: not needed
        fresh = cls.from_pretrained(ROOT / name).eval()
        out[adapter] = text_lm_loss(PeftModel.from_pretrained(fresh, path).eval(), val_ids)
    return out


def main():
    ROOT.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(1)
    tokens = torch.randint(0, COMMON["vocab_size"], (BATCH, SEQ))
    golden = {
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                     "peft": peft.__version__},
        "tokens": tokens.tolist(),
    }
    tok = tokenizers.Tokenizer.from_file(str(TOKENIZER))
    val_ids = tok.encode((FIXTURES / "text" / "genesis-val.txt").read_text(),
                         add_special_tokens=False).ids
    text = {"block_size": BLOCK, "val_ids": val_ids}
    for seed, name in enumerate(MODELS):
        m = model(name, seed)
        save(m, ROOT / name)
        golden[name] = outputs(m, tokens)
        text[name] = {"base": text_lm_loss(m, val_ids)}
        if name in ADAPTERS:
            text[name]["adapters"] = adapters(name, val_ids)
    half = model("tiny-qwen3", 2).to(torch.bfloat16)
    save(half, ROOT / "tiny-qwen3-bf16-sharded", max_shard_size="20KB")
    # Read back as float32: `.float()` on the bf16 model would keep the
    # rotary frequencies rounded to bf16.
    reread = Qwen3ForCausalLM.from_pretrained(ROOT / "tiny-qwen3-bf16-sharded",
                                              dtype=torch.float32).eval()
    golden["tiny-qwen3-bf16-sharded"] = outputs(reread, tokens)
    (ROOT / "golden.json").write_text(json.dumps(golden) + "\n")
    (ROOT / "text_golden.json").write_text(json.dumps(text) + "\n")


if __name__ == "__main__":
    main()

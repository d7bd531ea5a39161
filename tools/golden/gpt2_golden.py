"""Golden numbers for lrscape's GPT-2 family, from `transformers`.

Builds a tiny `GPT2LMHeadModel` from a `GPT2Config` with random weights
(no hub), with every weight, bias and LayerNorm parameter drawn at a scale
where attention is far from uniform (HF's own init leaves biases at 0 and
norms at 1, which would hide mistakes in them), and writes:

- fixtures/gpt2/tiny/: `save_pretrained` (config.json, model.safetensors, f32)
- fixtures/gpt2/tiny-f16-sharded/: the same model in float16, saved in
  shards (model.safetensors.index.json)
- fixtures/gpt2/golden.json: a token batch, the logits and the
  language-model loss (`labels = input_ids`) of both, the f16 one computed
  from its weights cast back to float32.

Run: python tools/golden/gpt2_golden.py   (needs torch and transformers)
"""

import json
import pathlib

import torch
import transformers
from transformers import GPT2Config, GPT2LMHeadModel

ROOT = pathlib.Path(__file__).resolve().parents[2] / "fixtures" / "gpt2"
CONFIG = dict(
    vocab_size=96,
    n_positions=32,
    n_embd=32,
    n_layer=2,
    n_head=4,
    activation_function="gelu_new",
    layer_norm_epsilon=1e-5,
    resid_pdrop=0.0,
    embd_pdrop=0.0,
    attn_pdrop=0.0,
)
BATCH, SEQ = 3, 12


def flat(t):
    return {"shape": list(t.shape), "data": [float(f"{float(v):.8g}") for v in t.detach().reshape(-1)]}


def model():
    torch.manual_seed(0)
    m = GPT2LMHeadModel(GPT2Config(**CONFIG)).eval()
    with torch.no_grad():
        for name, p in m.named_parameters():
            if name.endswith("ln_1.weight") or name.endswith("ln_2.weight") or name.endswith("ln_f.weight"):
                p.copy_(1.0 + 0.2 * torch.randn_like(p))
            elif name.endswith("bias"):
                p.copy_(0.1 * torch.randn_like(p))
            else:
                p.copy_(0.3 * torch.randn_like(p))
    return m


def outputs(m, tokens):
    with torch.no_grad():
        out = m(input_ids=tokens, labels=tokens)
    return {"logits": flat(out.logits), "loss": float(out.loss)}


def main():
    m = model()
    torch.manual_seed(1)
    tokens = torch.randint(0, CONFIG["vocab_size"], (BATCH, SEQ))
    m.save_pretrained(ROOT / "tiny")
    half = model().half()
    half.save_pretrained(ROOT / "tiny-f16-sharded", max_shard_size="40KB")
    golden = {
        "transformers_version": transformers.__version__,
        "torch_version": torch.__version__,
        "tokens": tokens.tolist(),
        "f32": outputs(m, tokens),
        "f16": outputs(half.float(), tokens),
    }
    (ROOT / "golden.json").write_text(json.dumps(golden) + "\n")


if __name__ == "__main__":
    main()

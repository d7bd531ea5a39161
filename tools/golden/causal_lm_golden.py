"""Golden numbers for lrscape's tinyformer as a causal language model.

The seed notebook's TinyTransformer (tools/golden/tinyformer_golden.py)
with the two changes `model.causal = true` makes: a causal attention mask
(position i attends to positions <= i) and the head on every position. Writes
fixtures/causal_lm_golden.json: the config, the state dict, tokens and
next-token targets, the logits [B*T, vocab] (example-major), the mean
cross-entropy over every target, and the loss gradient of two weights.

Run: python3 tools/golden/causal_lm_golden.py   (needs torch)
"""

import json
import math
import pathlib

import torch
import torch.nn as nn
import torch.nn.functional as F

from tinyformer_golden import SelfAttention, TinyTransformer, state_of


class CausalSelfAttention(SelfAttention):
    """The notebook's SelfAttention with a causal mask."""

    def forward(self, x):
        B, T, C = x.shape
        q = self.q(x).view(B, T, self.n_heads, self.d_head).transpose(1, 2)
        k = self.k(x).view(B, T, self.n_heads, self.d_head).transpose(1, 2)
        v = self.v(x).view(B, T, self.n_heads, self.d_head).transpose(1, 2)
        att = (q @ k.transpose(-2, -1)) / math.sqrt(self.d_head)
        future = torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1)
        att = att.masked_fill(future, float("-inf")).softmax(dim=-1)
        out = att @ v
        out = out.transpose(1, 2).reshape(B, T, C)
        return self.o(out)


class CausalLM(TinyTransformer):
    """The notebook's model with causal attention and the head on every position."""

    def __init__(self, **config):
        super().__init__(**config)
        for b in self.blocks:
            b.attn = CausalSelfAttention(config["d_model"], config["n_heads"])

    def forward(self, x):
        h = self.emb(x) + self.pos[:, : x.size(1)]
        for b in self.blocks:
            h = b(h)
        return self.head(self.norm(h))  # [B, T, vocab]: every position


CONFIG = dict(vocab=12, seq_len=6, d_model=8, n_layers=2, n_heads=2, d_ff=16)
BATCH = 4
GRADS = ["head.weight", "blocks.0.attn.q.weight"]


def main():
    torch.manual_seed(4321)
    model = CausalLM(**CONFIG)
    with torch.no_grad():
        model.pos.normal_(0.0, 0.5)
        for name, p in model.named_parameters():
            if name.endswith(".scale"):
                p.uniform_(0.5, 1.5)
    seq = torch.randint(0, CONFIG["vocab"], (BATCH, CONFIG["seq_len"] + 1))
    tokens, targets = seq[:, :-1], seq[:, 1:]
    logits = model(tokens).reshape(-1, CONFIG["vocab"])
    loss = F.cross_entropy(logits, targets.reshape(-1))
    loss.backward()
    params = dict(model.named_parameters())
    out = {
        "generator": "tools/golden/causal_lm_golden.py",
        "torch_version": torch.__version__,
        "config": dict(CONFIG, causal=True),
        "state": state_of(model),
        "tokens": tokens.tolist(),
        "targets": targets.tolist(),
        "logits": [[float(v) for v in row] for row in logits.detach()],
        "loss": float(loss.detach()),
        "grads": {
            name: {"shape": list(params[name].grad.shape),
                   "data": [float(v) for v in params[name].grad.reshape(-1)]}
            for name in GRADS
        },
    }
    path = pathlib.Path(__file__).resolve().parents[2] / "fixtures/causal_lm_golden.json"
    path.write_text(json.dumps(out))
    print(f"wrote {path} ({path.stat().st_size} bytes), loss {float(loss.detach()):.6f}")


if __name__ == "__main__":
    main()

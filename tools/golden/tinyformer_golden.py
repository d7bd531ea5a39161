"""Golden numbers for lrscape's tinyformer and AdamW, from PyTorch.

Builds the seed notebook's TinyTransformer (its classes copied verbatim
below) at a small size with PyTorch's default initialisation, a random
position table, and writes to
fixtures/tinyformer_golden.json:

- the config, the state dict (notebook names, row-major values),
- a batch of tokens and labels, the logits and the mean cross-entropy,
- the state dict after each of two `torch.optim.AdamW` steps (lr 1e-2,
  weight decay 0.01, PyTorch's default betas and eps), with the loss
  before each step.

Run: python3 tools/golden/tinyformer_golden.py   (needs torch)
"""

import json
import math
import pathlib

import torch
import torch.nn as nn
import torch.nn.functional as F


# --- the notebook's model, verbatim -------------------------------------
class RMSNorm(nn.Module):
    def __init__(self, d, eps=1e-6):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(d))
        self.eps = eps

    def forward(self, x):
        return x * self.scale / (x.pow(2).mean(-1, keepdim=True) + self.eps).sqrt()


class SelfAttention(nn.Module):
    def __init__(self, d_model, n_heads):
        super().__init__()
        self.n_heads = n_heads
        self.d_head = d_model // n_heads
        self.q = nn.Linear(d_model, d_model, bias=False)
        self.k = nn.Linear(d_model, d_model, bias=False)
        self.v = nn.Linear(d_model, d_model, bias=False)
        self.o = nn.Linear(d_model, d_model, bias=False)

    def forward(self, x):
        B, T, C = x.shape
        q = self.q(x).view(B, T, self.n_heads, self.d_head).transpose(1, 2)
        k = self.k(x).view(B, T, self.n_heads, self.d_head).transpose(1, 2)
        v = self.v(x).view(B, T, self.n_heads, self.d_head).transpose(1, 2)
        att = (q @ k.transpose(-2, -1)) / math.sqrt(self.d_head)
        att = att.softmax(dim=-1)
        out = att @ v
        out = out.transpose(1, 2).reshape(B, T, C)
        return self.o(out)


class Block(nn.Module):
    def __init__(self, d_model, n_heads, d_ff):
        super().__init__()
        self.attn = SelfAttention(d_model, n_heads)
        self.mlp = nn.Sequential(
            nn.Linear(d_model, d_ff),
            nn.GELU(),
            nn.Linear(d_ff, d_model),
        )
        self.n1 = RMSNorm(d_model)
        self.n2 = RMSNorm(d_model)

    def forward(self, x):
        x = x + self.attn(self.n1(x))
        x = x + self.mlp(self.n2(x))
        return x


class TinyTransformer(nn.Module):
    def __init__(self, vocab, seq_len, d_model=128, n_layers=3, n_heads=4, d_ff=256):
        super().__init__()
        self.emb = nn.Embedding(vocab, d_model)
        self.pos = nn.Parameter(torch.zeros(1, seq_len, d_model))
        self.blocks = nn.ModuleList([Block(d_model, n_heads, d_ff) for _ in range(n_layers)])
        self.norm = RMSNorm(d_model)
        self.head = nn.Linear(d_model, vocab)

    def forward(self, x):
        h = self.emb(x) + self.pos[:, : x.size(1)]
        for b in self.blocks:
            h = b(h)
        h = self.norm(h)
        return self.head(h[:, -1])


# --- fixture --------------------------------------------------------------
CONFIG = dict(vocab=12, seq_len=6, d_model=8, n_layers=2, n_heads=2, d_ff=16)
BATCH = 5
LR, WEIGHT_DECAY = 1e-2, 0.01


def state_of(model):
    return {
        name: {"shape": list(t.shape), "data": [float(v) for v in t.detach().reshape(-1)]}
        for name, t in model.state_dict().items()
    }


def main():
    torch.manual_seed(1234)
    model = TinyTransformer(**CONFIG)
    with torch.no_grad():
        model.pos.normal_(0.0, 0.5)
        for name, p in model.named_parameters():
            if name.endswith(".scale"):  # make the norms' scales matter
                p.uniform_(0.5, 1.5)
    tokens = torch.randint(0, CONFIG["vocab"], (BATCH, CONFIG["seq_len"]))
    labels = tokens[:, 2].clone()

    initial = state_of(model)
    logits = model(tokens)
    loss = F.cross_entropy(logits, labels)

    opt = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=WEIGHT_DECAY)
    steps = []
    for _ in range(2):
        opt.zero_grad(set_to_none=True)
        step_loss = F.cross_entropy(model(tokens), labels)
        step_loss.backward()
        opt.step()
        steps.append({"loss_before": float(step_loss.detach()), "state_after": state_of(model)})

    out = {
        "generator": "tools/golden/tinyformer_golden.py",
        "torch_version": torch.__version__,
        "config": CONFIG,
        "state": initial,
        "tokens": tokens.tolist(),
        "labels": labels.tolist(),
        "logits": [[float(v) for v in row] for row in logits.detach()],
        "loss": float(loss.detach()),
        "adamw": {"lr": LR, "weight_decay": WEIGHT_DECAY, "betas": [0.9, 0.999], "eps": 1e-8, "steps": steps},
    }
    path = pathlib.Path(__file__).resolve().parents[2] / "fixtures/tinyformer_golden.json"
    path.write_text(json.dumps(out))
    print(f"wrote {path} ({path.stat().st_size} bytes), loss {float(loss.detach()):.6f}")


if __name__ == "__main__":
    main()

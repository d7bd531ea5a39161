"""Golden numbers for lrscape's adapters, from HF PEFT.

Builds the seed notebook's TinyTransformer (from tinyformer_golden.py) at a
small size, wraps it with `peft` for LoRA, rsLoRA, DoRA and PiSSA on every
block linear (head frozen), MiLoRA as tools/golden/milora.py sets it up,
LoRA+ (LoRA stepped by `create_loraplus_optimizer`, ratio
LORAPLUS_RATIO) and OLoRA (`init_lora_weights="olora"`), and writes fixtures/peft_golden.json with, per
method: the base state dict, the adapter factors (PEFT layout:
A `[r, in]`, B `[out, r]`, DoRA magnitude `[out]`), the residual base
weights (PiSSA, MiLoRA), the logits on a fixed batch, and the factors after one
`torch.optim.AdamW` step (lr 1e-2, no weight decay) on the mean
cross-entropy, with the gradients of that step.

For LoRA, rsLoRA and DoRA, B is set to random values (PEFT initialises it
to 0, which would hide the scaling); A and B are the same for the three.

Run: python3 tools/golden/peft_golden.py   (needs torch and peft)
"""

import json
import pathlib
import sys

import torch
import torch.nn.functional as F
from peft import LoraConfig, get_peft_model
from peft.optimizers import create_loraplus_optimizer

from milora import milora_init

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from tinyformer_golden import TinyTransformer  # noqa: E402

CONFIG = dict(vocab=12, seq_len=6, d_model=8, n_layers=2, n_heads=2, d_ff=16)
R, ALPHA = 2, 4.0
TARGETS = ["q", "k", "v", "o", "mlp.0", "mlp.2"]
LR = 1e-2
LORAPLUS_RATIO = 16.0
BATCH = 5


def flat(t):
    return {"shape": list(t.shape), "data": [float(v) for v in t.detach().reshape(-1)]}


def base_model():
    torch.manual_seed(99)
    model = TinyTransformer(**CONFIG)
    with torch.no_grad():
        model.pos.normal_(0.0, 0.5)
    return model


def module_names(model):
    return [
        name
        for name, module in model.named_modules()
        if name.split(".")[-1] in ("q", "k", "v", "o") or name.endswith("mlp.0") or name.endswith("mlp.2")
        if hasattr(module, "lora_A")
    ]


def short(name):
    # base_model.model.blocks.0.attn.q -> blocks.0.attn.q
    return name.removeprefix("base_model.model.")


def factors(peft_model, with_base):
    out = {}
    for name in module_names(peft_model):
        m = peft_model.get_submodule(name)
        entry = {
            "A": flat(m.lora_A["default"].weight),
            "B": flat(m.lora_B["default"].weight),
        }
        if with_base:
            entry["base"] = flat(m.base_layer.weight)
        if getattr(m, "lora_magnitude_vector", None) and "default" in m.lora_magnitude_vector:
            entry["m"] = flat(m.lora_magnitude_vector["default"].weight)
        out[short(name)] = entry
    return out


def run(kind, given, tokens, labels):
    model = base_model()
    config = LoraConfig(
        r=R,
        lora_alpha=ALPHA,
        target_modules=TARGETS,
        init_lora_weights={"pissa": "pissa", "olora": "olora"}.get(kind, True),
        use_dora=kind == "dora",
        use_rslora=kind == "rslora",
    )
    peft_model = get_peft_model(model, config)
    if kind == "milora":
        with torch.no_grad():
            for name in module_names(peft_model):
                milora_init(peft_model.get_submodule(name))
    if given is not None:
        with torch.no_grad():
            for name in module_names(peft_model):
                m = peft_model.get_submodule(name)
                a, b = given[short(name)]
                m.lora_A["default"].weight.copy_(a)
                m.lora_B["default"].weight.copy_(b)
    initial = factors(peft_model, kind in ("pissa", "milora", "olora"))
    logits = peft_model(tokens)
    params = [p for p in peft_model.parameters() if p.requires_grad]
    if kind == "loraplus":
        opt = create_loraplus_optimizer(peft_model, torch.optim.AdamW, lr=LR,
                                        loraplus_lr_ratio=LORAPLUS_RATIO)
    else:
        opt = torch.optim.AdamW(params, lr=LR, weight_decay=0.0)
    opt.zero_grad()
    loss = F.cross_entropy(peft_model(tokens), labels)
    loss.backward()
    grads = {}
    for name in module_names(peft_model):
        m = peft_model.get_submodule(name)
        entry = {"A": flat(m.lora_A["default"].weight.grad), "B": flat(m.lora_B["default"].weight.grad)}
        if getattr(m, "lora_magnitude_vector", None) and "default" in m.lora_magnitude_vector:
            entry["m"] = flat(m.lora_magnitude_vector["default"].weight.grad)
        grads[short(name)] = entry
    opt.step()
    return {
        "scaling": ALPHA / (R**0.5) if kind == "rslora" else ALPHA / R,
        "factors": initial,
        "logits": [[float(v) for v in row] for row in logits.detach()],
        "loss": float(loss.detach()),
        "grads": grads,
        "after_step": factors(peft_model, False),
        "trainable": sum(p.numel() for p in params),
    }


def main():
    torch.manual_seed(7)
    tokens = torch.randint(0, CONFIG["vocab"], (BATCH, CONFIG["seq_len"]))
    labels = tokens[:, 4].clone()
    probe = get_peft_model(base_model(), LoraConfig(r=R, lora_alpha=ALPHA, target_modules=TARGETS))
    torch.manual_seed(8)
    given = {}
    for name in module_names(probe):
        m = probe.get_submodule(name)
        given[short(name)] = (
            torch.randn_like(m.lora_A["default"].weight) * 0.3,
            torch.randn_like(m.lora_B["default"].weight) * 0.3,
        )
    import peft

    out = {
        "generator": "tools/golden/peft_golden.py",
        "torch_version": torch.__version__,
        "peft_version": peft.__version__,
        "config": CONFIG,
        "r": R,
        "lora_alpha": ALPHA,
        "lr": LR,
        "loraplus_lr_ratio": LORAPLUS_RATIO,
        "base_state": {k: flat(v) for k, v in base_model().state_dict().items()},
        "tokens": tokens.tolist(),
        "labels": labels.tolist(),
        "methods": {
            "lora": run("lora", given, tokens, labels),
            "rslora": run("rslora", given, tokens, labels),
            "loraplus": run("loraplus", given, tokens, labels),
            "dora": run("dora", given, tokens, labels),
            "pissa": run("pissa", None, tokens, labels),
            "milora": run("milora", None, tokens, labels),
            "olora": run("olora", None, tokens, labels),
        },
    }
    path = pathlib.Path(__file__).resolve().parents[2] / "fixtures/peft_golden.json"
    path.write_text(json.dumps(out))
    print(f"wrote {path} ({path.stat().st_size} bytes)")


if __name__ == "__main__":
    main()

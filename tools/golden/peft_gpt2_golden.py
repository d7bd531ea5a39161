"""Golden numbers for lrscape's adapters on GPT-2, from HF PEFT.

Wraps the random tiny GPT-2 of fixtures/gpt2/tiny (tools/golden/gpt2_golden.py)
with `peft` for LoRA, rsLoRA, DoRA and PiSSA (and MiLoRA as
tools/golden/milora.py sets it up) on every block linear
(`c_attn`, `c_proj`, `c_fc`: GPT-2's Conv1D layers, `fan_in_fan_out`), and
writes fixtures/peft_gpt2_golden.json with, per method: the adapter factors
(PEFT layout: A `[r, in]`, B `[out, r]`, DoRA magnitude `[out]`), the logits and the
causal-LM loss (`labels = input_ids`) on a fixed batch, the gradients, and the
factors after one `torch.optim.AdamW` step (lr 1e-2, no weight decay).

For LoRA, rsLoRA and DoRA, A and B are set to the random `given` factors
(PEFT initialises B to 0, which would hide the scaling), the same for the
three; their `factors` hold only DoRA's magnitude.

Run: python tools/golden/peft_gpt2_golden.py   (needs torch, transformers, peft)
"""

import json
import pathlib

import peft
import torch
from peft import LoraConfig, get_peft_model

from milora import milora_init
from transformers import GPT2LMHeadModel

ROOT = pathlib.Path(__file__).resolve().parents[2]
R, ALPHA = 2, 4.0
TARGETS = ["c_attn", "c_proj", "c_fc"]
LR = 1e-2
BATCH, SEQ = 2, 8


def flat(t):
    return {"shape": list(t.shape), "data": [float(f"{float(v):.7g}") for v in t.detach().reshape(-1)]}


def base_model():
    return GPT2LMHeadModel.from_pretrained(ROOT / "fixtures" / "gpt2" / "tiny").eval()


def adapted(model):
    return [name for name, module in model.named_modules() if hasattr(module, "lora_A")]


def short(name):
    # base_model.model.transformer.h.0.attn.c_attn -> h.0.attn.c_attn
    return name.removeprefix("base_model.model.transformer.")


def factors(peft_model):
    out = {}
    for name in adapted(peft_model):
        m = peft_model.get_submodule(name)
        entry = {"A": flat(m.lora_A["default"].weight), "B": flat(m.lora_B["default"].weight)}
        if getattr(m, "lora_magnitude_vector", None) and "default" in m.lora_magnitude_vector:
            entry["m"] = flat(m.lora_magnitude_vector["default"].weight)
        out[short(name)] = entry
    return out


def run(kind, given, tokens):
    config = LoraConfig(
        r=R,
        lora_alpha=ALPHA,
        target_modules=TARGETS,
        fan_in_fan_out=True,
        init_lora_weights="pissa" if kind == "pissa" else True,
        use_dora=kind == "dora",
        use_rslora=kind == "rslora",
    )
    peft_model = get_peft_model(base_model(), config)
    if kind == "milora":
        with torch.no_grad():
            for name in adapted(peft_model):
                milora_init(peft_model.get_submodule(name))
    if given is not None:
        with torch.no_grad():
            for name in adapted(peft_model):
                m = peft_model.get_submodule(name)
                a, b = given[short(name)]
                m.lora_A["default"].weight.copy_(a)
                m.lora_B["default"].weight.copy_(b)
    # LoRA, rsLoRA and DoRA start from the given factors (stored once).
    initial = factors(peft_model) if given is None else {
        name: {k: v for k, v in entry.items() if k == "m"} for name, entry in factors(peft_model).items()
    }
    params = [p for p in peft_model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=LR, weight_decay=0.0)
    opt.zero_grad()
    out = peft_model(input_ids=tokens, labels=tokens)
    out.loss.backward()
    grads = {}
    for name in adapted(peft_model):
        m = peft_model.get_submodule(name)
        entry = {"A": flat(m.lora_A["default"].weight.grad), "B": flat(m.lora_B["default"].weight.grad)}
        if getattr(m, "lora_magnitude_vector", None) and "default" in m.lora_magnitude_vector:
            entry["m"] = flat(m.lora_magnitude_vector["default"].weight.grad)
        grads[short(name)] = entry
    opt.step()
    return {
        "scaling": ALPHA / (R**0.5) if kind == "rslora" else ALPHA / R,
        "factors": initial,
        "logits": flat(out.logits),
        "loss": float(out.loss.detach()),
        "grads": grads,
        "after_step": factors(peft_model),
        "trainable": sum(p.numel() for p in params),
    }


def main():
    torch.manual_seed(7)
    tokens = torch.randint(0, 96, (BATCH, SEQ))
    probe = get_peft_model(base_model(), LoraConfig(r=R, lora_alpha=ALPHA, target_modules=TARGETS, fan_in_fan_out=True))
    torch.manual_seed(8)
    given = {}
    for name in adapted(probe):
        m = probe.get_submodule(name)
        given[short(name)] = (
            torch.randn_like(m.lora_A["default"].weight) * 0.3,
            torch.randn_like(m.lora_B["default"].weight) * 0.3,
        )
    out = {
        "generator": "tools/golden/peft_gpt2_golden.py",
        "torch_version": torch.__version__,
        "peft_version": peft.__version__,
        "r": R,
        "lora_alpha": ALPHA,
        "lr": LR,
        "tokens": tokens.tolist(),
        "given": {name: {"A": flat(a), "B": flat(b)} for name, (a, b) in given.items()},
        "methods": {kind: run(kind, None if kind in ("pissa", "milora") else given, tokens) for kind in ("lora", "rslora", "dora", "pissa", "milora")},
    }
    path = ROOT / "fixtures" / "peft_gpt2_golden.json"
    path.write_text(json.dumps(out) + "\n")
    print(f"wrote {path} ({path.stat().st_size} bytes)")


if __name__ == "__main__":
    main()

"""Golden numbers for lrscape's GraLoRA, RandLoRA and LoRA-GA, from HF PEFT.

Same model, batch and targets as tools/golden/peft_golden.py (the seed
notebook's TinyTransformer at a small size, every block linear adapted, head
frozen). Writes fixtures/peft_variants_golden.json with the base state dict,
the token batch, and per method (GraLoRA `gralora_k=2`; hybrid GraLoRA with
r=4, `hybrid_r=2`; RandLoRA with PEFT's dense shared bases; LoRA-GA with
`LoraGAConfig` defaults over two gradient batches):

- "scaling" and "options" (the PEFT options used),
- "factors": the trainable tensors the forward starts from, in PEFT's layout
  (GraLoRA A `[k, in/k, r]`, B `[k, r, out/k]`, hybrid A_general
  `[hybrid_r, in]`, B_general `[out, hybrid_r]`; RandLoRA lambda `[r, nb]`,
  gamma `[nb, min(in, out)]`; LoRA-GA A `[r, in]`, B `[out, r]` plus the
  averaged gradient and the residual base weight `[out, in]`),
- "delta": PEFT's `get_delta_weight` `[out, in]` at those factors,
- "logits", "loss" (mean cross-entropy), "grads", "after_step" (one
  `torch.optim.AdamW` step, lr 1e-2, no weight decay) and "trainable".

GraLoRA and RandLoRA start from seeded random factors (PEFT's own init, with
B = 0 or lambda = 0, is recorded under "init"); RandLoRA also records the
shared bases under "bases". LoRA-GA starts from PEFT's init, which leaves the
logits equal to the base model's ("base_logits").

The script asserts that PEFT's delta weights equal independent formulas,
that the merged weights give PEFT's logits, that the RandLoRA bases are
reproduced from `projection_prng_key`, and that LoRA-GA's A and B are the
expected singular vectors of the averaged gradient.

Run: HF_HUB_OFFLINE=1 python3 tools/golden/peft_variants_golden.py   (needs torch and peft)
"""

import dataclasses
import json
import math
import pathlib
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, str(pathlib.Path(__file__).parent))
import peft_golden  # noqa: E402  (its main() only runs as a script)
from peft_golden import ALPHA, BATCH, CONFIG, LR, R, TARGETS, base_model, flat, short  # noqa: E402

import peft  # noqa: E402
from peft import (  # noqa: E402
    GraloraConfig,
    LoraConfig,
    LoraGAConfig,
    RandLoraConfig,
    get_peft_model,
    preprocess_loraga,
)
from peft.tuners.tuners_utils import BaseTunerLayer  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[2]
INIT_SEED, GIVEN_SEED, GA_SEED, SVD_SEED = 11, 8, 9, 10


def batch(seed):
    torch.manual_seed(seed)
    tokens = torch.randint(0, CONFIG["vocab"], (BATCH, CONFIG["seq_len"]))
    return tokens, tokens[:, 4].clone()


def layers(model):
    """(short name, adapted layer) in named_modules order."""
    return [(short(n), m) for n, m in model.named_modules() if isinstance(m, BaseTunerLayer)]


def rows(t):
    return [[float(v) for v in row] for row in t.detach()]


def close(a, b, tol, what):
    err = float((a - b).abs().max())
    assert err <= tol, f"{what}: max|diff| = {err:.3e} > {tol:.1e}"
    return err


# --- tensors of each method, by PEFT name ---------------------------------
def gralora_tensors(m):
    out = {"gralora_A": m.gralora_A["default"], "gralora_B": m.gralora_B["default"]}
    if m.hybrid_r["default"] > 0:
        out["gralora_A_general"] = m.gralora_A_general["default"].weight
        out["gralora_B_general"] = m.gralora_B_general["default"].weight
    return out


def randlora_tensors(m):
    return {"randlora_lambda": m.randlora_lambda["default"], "randlora_gamma": m.randlora_gamma["default"]}


def lora_tensors(m):
    return {"A": m.lora_A["default"].weight, "B": m.lora_B["default"].weight}


def snapshot(model, tensors):
    return {name: {k: flat(t) for k, t in tensors(m).items()} for name, m in layers(model)}


# --- independent formulas (tools/research specs) ---------------------------
def gralora_delta(t, r, scaling):
    a, b = t["gralora_A"], t["gralora_B"]  # [N, I, r], [N, r, O]
    n_blocks, i_dim, _ = a.shape
    o_dim = b.shape[2]
    s = r // n_blocks
    dw = torch.zeros(n_blocks * o_dim, n_blocks * i_dim)
    for j in range(n_blocks):  # output block
        for n in range(n_blocks):  # input block
            blk = a[n][:, j * s:(j + 1) * s] @ b[j][n * s:(n + 1) * s, :]  # [I, O]
            dw[j * o_dim:(j + 1) * o_dim, n * i_dim:(n + 1) * i_dim] = blk.T
    if "gralora_A_general" in t:
        dw = dw + t["gralora_B_general"] @ t["gralora_A_general"]
    return scaling * dw


def randlora_delta(t, base_a, base_b, in_f, out_f, r, scaling):
    mn, mx = min(in_f, out_f), max(in_f, out_f)
    nb = math.ceil(mn / r)
    lam, gam = t["randlora_lambda"], t["randlora_gamma"]  # [r, nb], [nb, mn]
    a = base_a[:, 0, :mn]  # [r, mn]
    ahat = (lam[:, :, None] * a[:, None, :] * gam[None, :, :]).reshape(r * nb, mn)  # row i*nb + j
    bhat = base_b[:mx, :nb, :].reshape(mx, nb * r)  # column j*r + i
    m = bhat @ ahat  # [max, min]
    return scaling * (m if mn == in_f else m.T)


def randlora_bases(r, key, max_dim, min_dim):
    g = torch.Generator(device="cpu").manual_seed(key)

    def kaiming(shape):
        t = torch.empty(shape, dtype=torch.bfloat16)
        return torch.nn.init.kaiming_uniform_(t, a=math.sqrt(5), generator=g)

    a = kaiming((r, 1, min_dim))
    nb = math.ceil(min_dim / r)
    b = torch.cat([kaiming((max_dim, 1, r)) for _ in range(nb)], dim=1)
    return (a / a.std()).float(), (b / b.std()).float()


def merged_logits(deltas, tokens, residual=None):
    """Logits of the base model with W (or the given residual W) + delta on each target."""
    model = base_model()
    with torch.no_grad():
        for name, dw in deltas.items():
            lin = model.get_submodule(name)
            w = residual[name] if residual is not None else lin.weight
            lin.weight.copy_(w + dw)
        return model(tokens)


# --- the common forward / backward / step ----------------------------------
def train(peft_model, tensors, tokens, labels):
    params = [p for p in peft_model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=LR, weight_decay=0.0)
    opt.zero_grad()
    logits = peft_model(tokens)
    loss = F.cross_entropy(logits, labels)
    loss.backward()
    grads = {name: {k: flat(t.grad) for k, t in tensors(m).items()} for name, m in layers(peft_model)}
    opt.step()
    return {
        "logits": rows(logits),
        "loss": float(loss.detach()),
        "grads": grads,
        "after_step": snapshot(peft_model, tensors),
        "trainable": sum(p.numel() for p in params),
    }, logits.detach()


def gralora(tokens, labels, r, hybrid_r):
    k = 2
    for name, lin in base_model().named_modules():
        if isinstance(lin, torch.nn.Linear) and name.split(".")[-1] in ("q", "k", "v", "o", "0", "2"):
            assert lin.in_features % k == 0 and lin.out_features % k == 0, name
    config = GraloraConfig(r=r, alpha=ALPHA, gralora_k=k, hybrid_r=hybrid_r, target_modules=TARGETS)
    torch.manual_seed(INIT_SEED)
    model = get_peft_model(base_model(), config)
    init = snapshot(model, gralora_tensors)
    scaling = ALPHA / (r + hybrid_r)
    for name, m in layers(model):
        t = gralora_tensors(m)
        i_dim = m.in_features // k
        assert t["gralora_A"].shape == (k, i_dim, r) and t["gralora_B"].shape == (k, r, m.out_features // k)
        assert torch.all(t["gralora_B"] == 0) and t["gralora_A"].abs().max() <= 1 / math.sqrt(i_dim)
        if hybrid_r:
            assert t["gralora_A_general"].shape == (hybrid_r, m.in_features)
            assert t["gralora_B_general"].shape == (m.out_features, hybrid_r)
            assert torch.all(t["gralora_B_general"] == 0)
        assert m.scaling["default"] == scaling
    torch.manual_seed(GIVEN_SEED)
    with torch.no_grad():
        for _, m in layers(model):
            for t in gralora_tensors(m).values():
                t.copy_(torch.randn_like(t) * 0.3)
    factors = snapshot(model, gralora_tensors)
    deltas, errs = {}, []
    with torch.no_grad():
        for name, m in layers(model):
            dw = m.get_delta_weight("default")
            assert dw.shape == (m.out_features, m.in_features)
            errs.append(close(dw, gralora_delta(gralora_tensors(m), r, scaling), 1e-6, f"gralora delta {name}"))
            deltas[name] = dw.clone()
    entry, logits = train(model, gralora_tensors, tokens, labels)
    fwd = close(logits, merged_logits(deltas, tokens), 1e-5, "gralora merged logits")
    print(f"gralora r={r} hybrid_r={hybrid_r}: max|delta-formula|={max(errs):.1e} |logits-merged|={fwd:.1e}"
          f" trainable={entry['trainable']}")
    assert entry["trainable"] == sum((r + hybrid_r) * (m.in_features + m.out_features) for _, m in layers(model))
    return {
        "scaling": scaling,
        "options": {"r": r, "alpha": ALPHA, "gralora_k": k, "hybrid_r": hybrid_r},
        "init": init,
        "factors": factors,
        "delta": {n: flat(d) for n, d in deltas.items()},
        **entry,
    }


def randlora(tokens, labels):
    key = 0
    config = RandLoraConfig(r=R, randlora_alpha=ALPHA, target_modules=TARGETS, projection_prng_key=key)
    torch.manual_seed(INIT_SEED)
    model = get_peft_model(base_model(), config)
    scaling = ALPHA / R
    shapes = [(m.out_features, m.in_features) for _, m in layers(model)]
    big = (max(s[0] for s in shapes), max(s[1] for s in shapes))
    max_dim, min_dim = max(big), min(big)
    n_bases = math.ceil(min_dim / R)
    base_a = model.base_model.randlora_A["default"]
    base_b = model.base_model.randlora_B["default"]
    assert base_a.dtype == torch.float32 and base_a.shape == (R, 1, min_dim)
    assert base_b.shape == (max_dim, n_bases, R)
    ref_a, ref_b = randlora_bases(R, key, max_dim, min_dim)
    assert torch.equal(base_a, ref_a) and torch.equal(base_b, ref_b), "randlora bases not reproduced"
    init = snapshot(model, randlora_tensors)
    for name, m in layers(model):
        t = randlora_tensors(m)
        mn = min(m.in_features, m.out_features)
        nb = math.ceil(mn / R)
        assert m.randlora_A["default"] is base_a and m.randlora_B["default"] is base_b
        assert t["randlora_lambda"].shape == (R, nb) and t["randlora_gamma"].shape == (nb, mn)
        assert torch.all(t["randlora_lambda"] == 0) and torch.all(t["randlora_gamma"] == 1 / mn)
        assert m.scaling["default"] == scaling
    torch.manual_seed(GIVEN_SEED)
    with torch.no_grad():
        for _, m in layers(model):
            for t in randlora_tensors(m).values():
                t.copy_(torch.randn_like(t) * 0.3)
    factors = snapshot(model, randlora_tensors)
    deltas, errs = {}, []
    with torch.no_grad():
        for name, m in layers(model):
            dw = m.get_delta_weight("default")
            assert dw.shape == (m.out_features, m.in_features)
            ref = randlora_delta(randlora_tensors(m), base_a, base_b, m.in_features, m.out_features, R, scaling)
            errs.append(close(dw, ref, 1e-5, f"randlora delta {name}"))
            deltas[name] = dw.clone()
    entry, logits = train(model, randlora_tensors, tokens, labels)
    fwd = close(logits, merged_logits(deltas, tokens), 1e-5, "randlora merged logits")
    print(f"randlora: bases A{tuple(base_a.shape)} B{tuple(base_b.shape)} max|delta-formula|={max(errs):.1e}"
          f" |logits-merged|={fwd:.1e} trainable={entry['trainable']}")
    expect = sum(math.ceil(min(s) / R) * (R + min(s)) for s in shapes)
    assert entry["trainable"] == expect
    return {
        "scaling": scaling,
        "options": {"r": R, "randlora_alpha": ALPHA, "projection_prng_key": key},
        "bases": {"randlora_A": flat(base_a), "randlora_B": flat(base_b)},
        "init": init,
        "factors": factors,
        "delta": {n: flat(d) for n, d in deltas.items()},
        **entry,
    }


def sign_aligned(x, ref, dim):
    """x with each row (dim=1) or column (dim=0) flipped to agree with ref."""
    s = torch.sign((x * ref).sum(dim=dim, keepdim=True))
    return x * s


def lora_ga(tokens, labels):
    ga_batches = [(tokens, labels), batch(GA_SEED)]
    ga = LoraGAConfig()
    config = LoraConfig(r=R, lora_alpha=ALPHA, target_modules=TARGETS, init_lora_weights="lora_ga",
                        lora_ga_config=ga)
    scaling = ALPHA / R

    # the averaged gradient, independently
    ref_model = base_model()
    for t, l in ga_batches:
        F.cross_entropy(ref_model(t), l).backward()

    model = base_model()
    with torch.no_grad():
        base_logits = model(tokens)
    original = {n: m.weight.detach().clone() for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)}

    def train_step():
        for t, l in ga_batches:
            F.cross_entropy(model(t), l).backward()

    preprocess_loraga(model, config, train_step)
    grads = {n: m._peft_loraga_grad.detach().clone() for n, m in model.named_modules()
             if hasattr(m, "_peft_loraga_grad")}
    for name, g in grads.items():
        close(g, ref_model.get_submodule(name).weight.grad / len(ga_batches), 1e-7, f"lora_ga grad {name}")
    torch.manual_seed(SVD_SEED)
    peft_model = get_peft_model(model, config)
    names = [n for n, _ in layers(peft_model)]
    assert sorted(names) == sorted(grads), (names, list(grads))

    factors, deltas, residual = {}, {}, {}
    errs_a, errs_b = [], []
    with torch.no_grad():
        for name, m in layers(peft_model):
            a, b, w = m.lora_A["default"].weight, m.lora_B["default"].weight, m.base_layer.weight
            g = grads[name]
            out_f, in_f = g.shape
            assert a.shape == (R, in_f) and b.shape == (out_f, R) and w.shape == (out_f, in_f)
            u, s, vh = torch.linalg.svd(g.double(), full_matrices=False)
            ref_a = vh[:R].float()
            ref_b = (u[:, R:2 * R] * s[R:2 * R] * out_f**0.25 / math.sqrt(ga.stable_gamma)).float()
            assert float(s[2 * R - 1] - s[2 * R]) > 1e-3 * float(s[0]), f"{name}: near-degenerate spectrum"
            errs_a.append(close(sign_aligned(a, ref_a, 1), ref_a, 1e-4, f"lora_ga A {name}"))
            errs_b.append(close(sign_aligned(b, ref_b, 0), ref_b, 1e-4 * float(ref_b.abs().max()),
                                f"lora_ga B {name}") / float(ref_b.abs().max()))
            dw = m.get_delta_weight("default")
            close(dw, scaling * b @ a, 1e-7, f"lora_ga delta {name}")
            close(w + dw, original[name], 1e-6, f"lora_ga residual {name}")
            deltas[name] = dw.clone()
            residual[name] = w.clone()
            factors[name] = {"grad": flat(g), "A": flat(a), "B": flat(b), "base": flat(w)}
            assert m.scaling["default"] == scaling
    entry, logits = train(peft_model, lora_tensors, tokens, labels)
    init_err = close(logits, base_logits, 1e-5, "lora_ga logits vs base")
    fwd = close(logits, merged_logits(deltas, tokens, residual), 1e-5, "lora_ga merged logits")
    print(f"lora_ga: max|A-Vh[:r]|={max(errs_a):.1e} max|B-ref|/max|ref|={max(errs_b):.1e}"
          f" |logits-base|={init_err:.1e} |logits-merged|={fwd:.1e} trainable={entry['trainable']}")
    assert entry["trainable"] == sum(R * (w.shape[0] + w.shape[1]) for w in grads.values())
    return {
        "scaling": scaling,
        "options": {"r": R, "lora_alpha": ALPHA, **dataclasses.asdict(ga)},
        "ga_batches": [{"tokens": t.tolist(), "labels": l.tolist()} for t, l in ga_batches],
        "base_logits": rows(base_logits),
        "factors": factors,
        "delta": {n: flat(d) for n, d in deltas.items()},
        **entry,
    }


def main():
    tokens, labels = batch(7)
    golden = ROOT / "fixtures/peft_golden.json"
    if golden.exists():
        ref = json.loads(golden.read_text())
        assert ref["tokens"] == tokens.tolist() and ref["labels"] == labels.tolist(), "batch differs from peft_golden"
    out = {
        "generator": "tools/golden/peft_variants_golden.py",
        "torch_version": torch.__version__,
        "peft_version": peft.__version__,
        "config": CONFIG,
        "r": R,
        "lora_alpha": ALPHA,
        "lr": LR,
        "base_state": {k: flat(v) for k, v in base_model().state_dict().items()},
        "tokens": tokens.tolist(),
        "labels": labels.tolist(),
        "methods": {
            "gralora": gralora(tokens, labels, R, 0),
            "gralora_hybrid": gralora(tokens, labels, 4, 2),
            "randlora": randlora(tokens, labels),
            "lora_ga": lora_ga(tokens, labels),
        },
    }
    assert peft_golden.R == R
    path = ROOT / "fixtures/peft_variants_golden.json"
    path.write_text(json.dumps(out))
    print(f"wrote {path} ({path.stat().st_size} bytes)")
    for method, entry in out["methods"].items():
        print(f"  {method}: {len(json.dumps(entry))} bytes")


if __name__ == "__main__":
    main()

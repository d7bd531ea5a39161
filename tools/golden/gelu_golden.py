"""Golden numbers for GELU (erf form) and its derivative.

lrscape's CPU backend evaluates erf with a rational approximation
(vendor/burn-flex/LRSCAPE-PATCH.md); this fixes the exact values it is
checked against. Writes fixtures/gelu_golden.json: points x (exactly
representable in float32), PyTorch's float64 `F.gelu(x)` (approximate='none')
and its autograd derivative.

Run: python3 tools/golden/gelu_golden.py   (needs torch)
"""

import json
import pathlib

import torch
import torch.nn.functional as F


def main():
    # Dense where GELU bends, sparser in the tails, plus the clamp edge of the
    # approximation (|x| / sqrt(2) = 4) and far-out points.
    xs = torch.cat(
        [
            torch.linspace(-8.0, 8.0, 1601),
            torch.tensor([-30.0, -12.0, -5.65685, 5.65685, 12.0, 30.0]),
        ]
    ).to(torch.float32)
    x = xs.to(torch.float64).requires_grad_(True)
    y = F.gelu(x, approximate="none")
    (grad,) = torch.autograd.grad(y.sum(), x)
    out = {
        "torch_version": torch.__version__,
        "x": xs.tolist(),
        "gelu": y.detach().tolist(),
        "gelu_grad": grad.tolist(),
    }
    path = pathlib.Path(__file__).resolve().parents[2] / "fixtures" / "gelu_golden.json"
    path.write_text(json.dumps(out) + "\n")
    print(f"wrote {path} ({len(xs)} points)")


if __name__ == "__main__":
    main()

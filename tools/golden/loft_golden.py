"""Reference numbers for lrscape's LoFT optimizer, from its paper's equations.

LoFT (Tastan et al., "LoFT: Low-Rank Adaptation That Behaves Like Full
Fine-Tuning", arXiv 2505.21289) is not in HF PEFT. This script follows the
paper's building blocks literally, in float64 numpy, for one linear
W = W0 + B A (A: [r, in], B: [out, r]; U = B, V = A^T in the paper):
  2. gradient scaling   g~_U = grad_U (V^T V)^-1,   g~_V = grad_V (U^T U)^-1
  3. first moments      m_U <- b1 m_U C_V + (1 - b1) g~_U,  C_V = (V_prev^T V)(V^T V)^-1
  4. second moments     P_i <- b2 C_V^T P_i C_V + (1 - b2) g~_i g~_i^T,  v_ij = V_j^T P_i V_j
  5. projected update   U <- U (1 - lr wd) - lr D V (V^T V)^-1,  D = m^/(sqrt(v^) + eps)
  1. alternation        U (= B) moves on odd steps, V (= A^T) on even ones
on the loss L = 0.5 ||W0 + B A - T||_F^2 (so dL/dW = W - T), and writes
fixtures/loft_golden.json:
  - "tiny": in 3, out 2, r 1, two steps (step 1 can be checked by hand:
    D = sign(g~_B a) up to eps, so B1 = B0 - 0.1 * [4, -4]/6);
  - "rank2": in 4, out 3, r 2, weight decay 0.1, five steps;
  - "full_rank": in = out = r = 3, twelve steps, beside plain AdamW on W:
    at full rank LoFT's weight follows AdamW's exactly (the paper's claim).

Run: python3 tools/golden/loft_golden.py   (needs numpy)
"""

import json
import pathlib

import numpy as np
from numpy.linalg import inv


class Loft:
    def __init__(self, A, B, lr, b1, b2, eps, wd):
        self.A, self.B = A.astype(float).copy(), B.astype(float).copy()
        r, n = A.shape
        m = B.shape[0]
        self.lr, self.b1, self.b2, self.eps, self.wd = lr, b1, b2, eps, wd
        self.k = 0
        self.mA, self.mB = np.zeros((r, n)), np.zeros((m, r))
        self.pA, self.pB = np.zeros((n, r, r)), np.zeros((m, r, r))
        self.A_prev = self.B_prev = None

    def step(self, G):
        A, B, b1, b2 = self.A, self.B, self.b1, self.b2
        self.k += 1
        k = self.k
        SB = inv(A @ A.T)
        SA = inv(B.T @ B)
        gB = (G @ A.T) @ SB
        gA = SA @ (B.T @ G)
        if k > 1:
            CV = (self.A_prev @ A.T) @ SB
            CUt = SA @ (B.T @ self.B_prev)
            self.mB = self.mB @ CV
            self.mA = CUt @ self.mA
            self.pB = CV.T[None] @ self.pB @ CV[None]
            self.pA = CUt[None] @ self.pA @ CUt.T[None]
        self.mB = b1 * self.mB + (1 - b1) * gB
        self.mA = b1 * self.mA + (1 - b1) * gA
        self.pB = b2 * self.pB + (1 - b2) * np.einsum("ia,ib->iab", gB, gB)
        self.pA = b2 * self.pA + (1 - b2) * np.einsum("aj,bj->jab", gA, gA)
        self.A_prev, self.B_prev = A.copy(), B.copy()
        bc1, bc2 = 1 - b1**k, 1 - b2**k
        if k % 2 == 1:
            M = self.mB @ A
            v = np.einsum("kj,ikl,lj->ij", A, self.pB, A)
            D = (M / bc1) / (np.sqrt(v / bc2) + self.eps)
            self.B = B * (1 - self.lr * self.wd) - self.lr * (D @ A.T) @ SB
        else:
            M = B @ self.mA
            v = np.einsum("ik,jkl,il->ij", B, self.pA, B)
            D = (M / bc1) / (np.sqrt(v / bc2) + self.eps)
            self.A = A * (1 - self.lr * self.wd) - self.lr * SA @ (B.T @ D)


def adamw_on_w(W, T, steps, lr, b1, b2, eps):
    m, v, out = np.zeros_like(W), np.zeros_like(W), []
    for k in range(1, steps + 1):
        G = W - T
        m = b1 * m + (1 - b1) * G
        v = b2 * v + (1 - b2) * G * G
        W = W - lr * (m / (1 - b1**k)) / (np.sqrt(v / (1 - b2**k)) + eps)
        out.append(W.tolist())
    return out


def run(W0, T, A, B, steps, **hp):
    loft = Loft(A, B, **hp)
    after = []
    for _ in range(steps):
        loft.step(W0 + loft.B @ loft.A - T)
        after.append({"A": loft.A.tolist(), "B": loft.B.tolist()})
    case = {"W0": W0.tolist(), "T": T.tolist(), "A": A.tolist(), "B": B.tolist()}
    return {**case, **hp, "after": after}


def main():
    tiny = run(
        np.array([[1.0, 0, -1], [0.5, 2, 0]]),
        np.array([[0.0, 1, 0], [1, 1, 1]]),
        np.array([[1.0, 2, -1]]),
        np.array([[0.5], [-1.0]]),
        2,
        lr=0.1, b1=0.9, b2=0.999, eps=1e-4, wd=0.0,
    )
    rng = np.random.default_rng(3)
    rank2 = run(
        rng.standard_normal((3, 4)),
        rng.standard_normal((3, 4)),
        rng.standard_normal((2, 4)),
        rng.standard_normal((3, 2)),
        5,
        lr=0.05, b1=0.9, b2=0.999, eps=1e-8, wd=0.1,
    )
    rng = np.random.default_rng(0)
    W0, T = rng.standard_normal((3, 3)), rng.standard_normal((3, 3))
    A, B = rng.standard_normal((3, 3)), rng.standard_normal((3, 3))
    hp = dict(lr=0.05, b1=0.9, b2=0.999, eps=1e-8, wd=0.0)
    full = run(W0, T, A, B, 12, **hp)
    full["adamw_w"] = adamw_on_w(W0 + B @ A, T, 12, hp["lr"], hp["b1"], hp["b2"], hp["eps"])
    worst = max(
        np.abs(np.array(W0) + np.array(s["B"]) @ np.array(s["A"]) - np.array(w)).max()
        for s, w in zip(full["after"], full["adamw_w"])
    )
    assert worst < 1e-10, worst
    out = {"generator": "tools/golden/loft_golden.py", "tiny": tiny, "rank2": rank2, "full_rank": full}
    path = pathlib.Path(__file__).resolve().parents[2] / "fixtures/loft_golden.json"
    path.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {path}; full rank: LoFT's W within {worst:.1e} of AdamW's")


if __name__ == "__main__":
    main()

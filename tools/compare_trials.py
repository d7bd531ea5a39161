"""Compare two trials.jsonl files of the same study, trial by trial.

Typical use: the same config run on two backends (flex on a CPU, wgpu on a
GPU) to see how far float rounding moves the results:

    python3 tools/compare_trials.py results/default/trials.jsonl \
        results/bench/h200-wgpu/default-trials.jsonl

Prints how many trials both hold, the share whose accuracy and validation
loss agree within a few bounds (overall and below the grid's two largest
learning rates, where training is chaotic and rounding differences grow),
the largest differences, and per cell (method, rank) the best learning rate
by mean accuracy over seeds in each file.
"""

import argparse
import collections
import json
import sys


def load(path):
    trials = {}
    with open(path) as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                r = json.loads(line)
                key = (r["method"], r.get("rank"), round(r["lr"], 12), r["seed"])
            except (ValueError, KeyError) as e:
                sys.exit(f"{path}:{n}: not a trial record ({e})")
            trials[key] = r
    return trials


def best_per_cell(trials):
    cells = collections.defaultdict(lambda: collections.defaultdict(list))
    for (method, rank, lr, _seed), r in trials.items():
        cells[(method, rank)][lr].append(r["val_accuracy"])
    return {
        cell: max((sum(v) / len(v), lr) for lr, v in by_lr.items())
        for cell, by_lr in cells.items()
    }


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("a")
    p.add_argument("b")
    args = p.parse_args()
    a, b = load(args.a), load(args.b)
    common = sorted(set(a) & set(b), key=str)
    if not common:
        sys.exit("the files share no trial (method, rank, lr, seed)")
    print(f"{len(common)} trials in both ({len(a)} in A, {len(b)} in B)")
    lrs = sorted({k[2] for k in common})
    calm = [k for k in common if len(lrs) < 3 or k[2] < lrs[-2]]
    rows = []
    for k in common:
        acc = abs(a[k]["val_accuracy"] - b[k]["val_accuracy"])
        loss = abs(a[k]["val_loss"] - b[k]["val_loss"]) / max(abs(a[k]["val_loss"]), 1e-3)
        rows.append((acc, loss, k))

    def share(keys, test):
        keys = set(keys)
        hits = sum(1 for acc, loss, k in rows if k in keys and test(acc, loss))
        return f"{100.0 * hits / max(len(keys), 1):.1f}%"

    for label, keys in [("all", common), (f"lr < {lrs[-2]:.3g}", calm)]:
        print(
            f"{label:>14}: accuracy equal {share(keys, lambda acc, _: acc == 0)}, "
            f"within 0.01 {share(keys, lambda acc, _: acc <= 0.01)}; "
            f"val loss within 0.1% {share(keys, lambda _, loss: loss <= 1e-3)}, "
            f"1% {share(keys, lambda _, loss: loss <= 1e-2)}"
        )
    print("largest accuracy differences (method, rank, lr, seed): A -> B")
    for acc, _loss, k in sorted(rows, reverse=True)[:5]:
        print(f"  {k}: {a[k]['val_accuracy']:.4f} -> {b[k]['val_accuracy']:.4f}")
    best_a, best_b = best_per_cell(a), best_per_cell(b)
    print("best mean accuracy over seeds @ lr, per cell: A | B")
    for cell in sorted(set(best_a) & set(best_b), key=str):
        (acc_a, lr_a), (acc_b, lr_b) = best_a[cell], best_b[cell]
        same = "" if lr_a == lr_b else "  (best LR differs)"
        print(f"  {cell[0]:>8} r{cell[1]}: {acc_a:.4f} @ {lr_a:.3g} | {acc_b:.4f} @ {lr_b:.3g}{same}")


if __name__ == "__main__":
    main()

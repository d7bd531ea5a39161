#!/usr/bin/env python3
"""AG-News as lrscape's labelled texts.

Reads AG-News's CSVs as distributed (no header; class 1-4, title,
description) from DIR/train.csv and DIR/test.csv, and writes DIR/train.jsonl
and DIR/test.jsonl: one {"text": title + " " + description, "label": class
- 1} per line, in the file's order; the backslashes the CSVs carry become
spaces and runs of whitespace one space.

Run: python3 tools/data/agnews.py DIR
"""

import csv
import json
import pathlib
import sys


def convert(src, dst):
    rows = 0
    with open(src, newline="", encoding="utf-8") as f, open(dst, "w", encoding="utf-8") as out:
        for line, row in enumerate(csv.reader(f), 1):
            if len(row) != 3 or not row[0].strip().isdigit():
                sys.exit(f"{src}:{line}: not AG-News's layout (class 1-4, title, description)")
            label = int(row[0]) - 1
            if not 0 <= label < 4:
                sys.exit(f"{src}:{line}: class {row[0]}: 1 to 4")
            text = " ".join(f"{row[1]} {row[2]}".replace("\\\\", " ").split())
            out.write(json.dumps({"text": text, "label": label}) + "\n")
            rows += 1
    print(f"{dst}: {rows} examples")


def main(directory):
    directory = pathlib.Path(directory)
    for split in ("train", "test"):
        convert(directory / f"{split}.csv", directory / f"{split}.jsonl")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "data/agnews")

#!/usr/bin/env python3
"""AG-News as JSONL labelled texts, as the Hugging Face `ag_news` dataset builds them.

lrscape reads AG-News's CSVs directly (`task.csv_layout = "ag_news"`,
`lrscape eval --csv-layout ag_news`). This script is the reference its
reader is tested against (fixtures/agnews/), and converts the files for
tools that want JSONL: DIR/train.csv and DIR/test.csv (no header; class
1-4, title, description) become DIR/train.jsonl and DIR/test.jsonl, one
{"text": title + " " + description, "label": class - 1} per line, in the
file's order, read with the `csv` options of the `ag_news` loading script.

Run: python3 tools/data/agnews.py DIR
     python3 tools/data/agnews.py FILE.csv OUT.jsonl
"""

import csv
import json
import pathlib
import sys


def convert(src, dst):
    rows = 0
    with open(src, newline="", encoding="utf-8") as f, open(dst, "w", encoding="utf-8") as out:
        reader = csv.reader(
            f, quotechar='"', delimiter=",", quoting=csv.QUOTE_ALL, skipinitialspace=True
        )
        for line, row in enumerate(reader, 1):
            if len(row) != 3 or not row[0].strip().isdigit():
                sys.exit(f"{src}:{line}: not AG-News's layout (class 1-4, title, description)")
            label, title, description = row
            label = int(label) - 1
            if not 0 <= label < 4:
                sys.exit(f"{src}:{line}: class {row[0]}: 1 to 4")
            text = " ".join((title, description))
            out.write(json.dumps({"text": text, "label": label}) + "\n")
            rows += 1
    print(f"{dst}: {rows} examples")


def main(args):
    if len(args) == 2:
        convert(args[0], args[1])
        return
    directory = pathlib.Path(args[0] if args else "data/agnews")
    for split in ("train", "test"):
        convert(directory / f"{split}.csv", directory / f"{split}.jsonl")


if __name__ == "__main__":
    main(sys.argv[1:])

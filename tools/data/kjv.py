#!/usr/bin/env python3
"""The King James Bible as the real-text study's corpus, split by chapter.

Reads the text from Debian's `bible-kjv` package (`apt-get install
bible-kjv`: the `bible` command and its data) and writes, under OUT
(default data/kjv/, git-ignored):

- ot-train.txt, ot-val.txt: the Old Testament (Genesis-Malachi), the base's
  pre-training text;
- gospels-train.txt, gospels-val.txt: the four Gospels (Matthew-John), the
  fine-tuning text: new names, places and a new register (parables,
  dialogue) the base has not seen.

Every `VAL_EVERY`-th chapter of a part (counting from its first) goes
to validation, the rest to training; one verse per line, verse numbers
removed, whitespace collapsed. Deterministic: the same package gives the
same bytes (SHA-256s printed).

Run: python3 tools/data/kjv.py [OUT]
"""

import hashlib
import pathlib
import re
import shutil
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
PARTS = {"ot": "Genesis 1:1-Malachi 4:6", "gospels": "Matthew 1:1-John 21:25"}
VAL_EVERY = 10
VERSE = re.compile(r"^(\S+?)(\d+):(\d+) (.*)$")


def chapters(spec):
    """The chapters of `spec` in order, each a list of verses."""
    out = subprocess.run(["bible", "-f", spec], check=True, capture_output=True, text=True).stdout
    found, current, last = [], None, None
    for line in out.splitlines():
        m = VERSE.match(line)
        if m:
            key = (m.group(1), m.group(2))
            if key != last:
                current = []
                found.append(current)
                last = key
            current.append(m.group(4))
        elif current is not None and line.strip():
            # A verse wrapped onto the next line.
            current[-1] += " " + line
    return [[" ".join(v.split()) for v in chapter] for chapter in found]


def main(out):
    if shutil.which("bible") is None:
        sys.exit("tools/data/kjv.py: no `bible` command: apt-get install bible-kjv")
    out.mkdir(parents=True, exist_ok=True)
    for name, spec in PARTS.items():
        parts = {"train": [], "val": []}
        found = chapters(spec)
        for i, chapter in enumerate(found):
            parts["val" if i % VAL_EVERY == VAL_EVERY - 1 else "train"].extend(chapter)
        for split, verses in parts.items():
            path = out / f"{name}-{split}.txt"
            data = ("\n".join(verses) + "\n").encode()
            path.write_bytes(data)
            digest = hashlib.sha256(data).hexdigest()
            print(f"{path}: {len(found)} chapters in {name}, {len(verses)} verses, {len(data)} bytes, sha256 {digest}")


if __name__ == "__main__":
    main(pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "data" / "kjv")

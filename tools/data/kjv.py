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
- genre-train.jsonl, genre-val.jsonl, genre-pretrain-train.txt,
  genre-pretrain-val.txt: the verse-genre task (kjv-genre study). Each of
  the 66 books has a genre (GENRES: law, history, wisdom, prophets,
  gospels, letters, apocalyptic); within a genre its books take turns, in
  canonical order, as a training, a validation and a pre-training book, so
  no book lends verses to two roles and a class cannot be told by the names
  of one book. The classifier's splits are up to PER_CLASS[split] verses of
  each genre, evenly spaced through its books of that role ({"text",
  "label"} JSONL); the pre-training books' verses are the encoder's masked-LM
  text, every VAL_EVERY-th verse held out.

Every `VAL_EVERY`-th chapter of a part (counting from its first) goes
to validation, the rest to training; one verse per line, verse numbers
removed, whitespace collapsed. Deterministic: the same package gives the
same bytes (SHA-256s printed).

Run: python3 tools/data/kjv.py [OUT]
"""

import hashlib
import json
import pathlib
import re
import shutil
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
PARTS = {"ot": "Genesis 1:1-Malachi 4:6", "gospels": "Matthew 1:1-John 21:25"}
VAL_EVERY = 10
VERSE = re.compile(r"^(\S+?)(\d+):(\d+) (.*)$")
GENRES = ["law", "history", "wisdom", "prophets", "gospels", "letters", "apocalyptic"]
PER_CLASS = {"train": 240, "val": 120}


def genre_of(book):
    """The genre of the book at canonical index `book` (0 = Genesis)."""
    if book in (26, 65):  # Daniel, Revelation
        return "apocalyptic"
    for last, genre in [(4, "law"), (16, "history"), (21, "wisdom"), (38, "prophets"),
                        (42, "gospels"), (43, "history"), (64, "letters")]:
        if book <= last:
            return genre


def books():
    """The verses of every book of the Bible in canonical order."""
    out = subprocess.run(["bible", "-f", "Genesis 1:1-Revelation 22:21"], check=True,
                         capture_output=True, text=True).stdout
    found, last = [], None
    for line in out.splitlines():
        m = VERSE.match(line)
        if m:
            if m.group(1) != last:
                found.append([])
                last = m.group(1)
            found[-1].append(m.group(4))
        elif found and line.strip():
            found[-1][-1] += " " + line
    assert len(found) == 66, len(found)
    return [[" ".join(v.split()) for v in book] for book in found]


def spaced(items, n):
    """`n` items evenly spaced through `items` (all of them if fewer)."""
    if len(items) <= n:
        return list(items)
    return [items[i * len(items) // n] for i in range(n)]


def genre_task(out):
    """The kjv-genre study's files; returns {path: bytes}."""
    roles = {"train": [], "val": [], "pretrain": []}
    by_genre = {g: [] for g in GENRES}
    for index, verses in enumerate(books()):
        by_genre[genre_of(index)].append(verses)
    files = {}
    for label, genre in enumerate(GENRES):
        for turn, verses in enumerate(by_genre[genre]):
            role = ["train", "val", "pretrain"][turn % 3]
            roles[role].append((label, verses))
    for split in ("train", "val"):
        rows = []
        for label, genre in enumerate(GENRES):
            verses = [v for l, book in roles[split] if l == label for v in book]
            rows += [{"text": v, "label": label} for v in spaced(verses, PER_CLASS[split])]
        files[out / f"genre-{split}.jsonl"] = "".join(json.dumps(r) + "\n" for r in rows)
    pretrain = [v for _, book in roles["pretrain"] for v in book]
    held = {"train": [], "val": []}
    for i, verse in enumerate(pretrain):
        held["val" if i % VAL_EVERY == VAL_EVERY - 1 else "train"].append(verse)
    for split, verses in held.items():
        files[out / f"genre-pretrain-{split}.txt"] = "\n".join(verses) + "\n"
    return files


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
    for path, text in genre_task(out).items():
        data = text.encode()
        path.write_bytes(data)
        lines = text.count("\n")
        print(f"{path}: {lines} lines, {len(data)} bytes, sha256 {hashlib.sha256(data).hexdigest()}")


if __name__ == "__main__":
    main(pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "data" / "kjv")

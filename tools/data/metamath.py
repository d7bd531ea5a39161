"""The paper's math setting as files lrscape reads, on a machine that
reaches the Hugging Face hub (these build machines do not).

Writes, beside configs/:

- models/Qwen3-0.6B-Base/, models/SmolLM2-135M/: config.json,
  model.safetensors, tokenizer.json (`huggingface_hub.snapshot_download`)
- data/metamathqa/train.jsonl: the first 100,000 examples of
  meta-math/MetaMathQA as lrscape's instruction JSONL (`query` ->
  `instruction`, `response` -> `output`; its responses end "The answer is:
  x", which the answer rule reads as the last number)
- data/gsm8k/test.jsonl: openai/gsm8k's test split (1,319 problems;
  `question` -> `instruction`, `answer`, which ends "#### x", -> `output`)

Run: python3 tools/data/metamath.py   (pip install datasets huggingface_hub)
"""

import json
import pathlib

from datasets import load_dataset
from huggingface_hub import snapshot_download

ROOT = pathlib.Path(__file__).resolve().parents[2]
FILES = ["config.json", "model.safetensors", "model.safetensors.index.json",
         "model-*.safetensors", "tokenizer.json"]


def write(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")


def main():
    for repo, name in [("Qwen/Qwen3-0.6B-Base", "Qwen3-0.6B-Base"),
                       ("HuggingFaceTB/SmolLM2-135M", "SmolLM2-135M")]:
        snapshot_download(repo, local_dir=ROOT / "models" / name, allow_patterns=FILES)
    metamath = load_dataset("meta-math/MetaMathQA", split="train[:100000]")
    write(ROOT / "data" / "metamathqa" / "train.jsonl",
          ({"instruction": r["query"], "output": r["response"]} for r in metamath))
    gsm8k = load_dataset("openai/gsm8k", "main", split="test")
    write(ROOT / "data" / "gsm8k" / "test.jsonl",
          ({"instruction": r["question"], "output": r["answer"]} for r in gsm8k))


if __name__ == "__main__":
    main()

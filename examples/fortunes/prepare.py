"""The fortunes example's data, from Debian's `fortunes` package (offline, real text).

Four topical fortune files are the classes (computers, politics, science,
men-women); entries are `%`-separated; backspace overstrike (`x\\b`) is removed;
texts found in two classes are dropped (ANCHORS.md). The train split (70%,
stratified, `random_state=seed`) becomes `fortunes.jsonl` with gold hidden;
its truth goes to `truth.npz` (reports only) and the test split to `test.jsonl`.

Run: `python examples/fortunes/prepare.py` (then `labelloop run examples/fortunes/labelloop.yaml`).
"""

from __future__ import annotations

import json
import re
import sys
from collections import Counter
from pathlib import Path

import numpy as np

FORTUNES_DIR = Path("/usr/share/games/fortunes")
CLASSES = ["computers", "politics", "science", "men-women"]
_OVERSTRIKE = re.compile(r".\x08")


def read_fortune_file(path: Path) -> list[str]:
    """Entries of one fortune file, overstrike removed, whitespace-trimmed, empty ones dropped."""
    raw = path.read_text(encoding="utf-8", errors="replace")
    entries = [_OVERSTRIKE.sub("", e).strip() for e in re.split(r"^%\s*$", raw, flags=re.MULTILINE)]
    return [e for e in entries if e]


def load_fortunes(fortunes_dir: Path = FORTUNES_DIR) -> tuple[list[str], np.ndarray]:
    """All texts of the four classes and their class ids; texts in two classes are dropped."""
    per_class = {}
    for name in CLASSES:
        path = fortunes_dir / name
        if not path.is_file():
            raise FileNotFoundError(f"{path}: not found; install Debian's fortune files (apt-get install fortunes)")
        per_class[name] = read_fortune_file(path)
    seen = Counter(t for texts in per_class.values() for t in set(texts))
    texts, labels = [], []
    for k, name in enumerate(CLASSES):
        kept = dict.fromkeys(t for t in per_class[name] if seen[t] == 1)  # also drops repeats within a file
        texts += list(kept)
        labels += [k] * len(kept)
    return texts, np.array(labels)


def split(texts: list[str], labels: np.ndarray, seed: int = 0):
    """70/30 stratified split, as in ANCHORS.md: (train_texts, train_y, test_texts, test_y)."""
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(texts))
    tr, te = train_test_split(idx, test_size=0.3, stratify=labels, random_state=seed)
    return [texts[i] for i in tr], labels[tr], [texts[i] for i in te], labels[te]


def write_example(folder: Path, seed: int = 0) -> Path:
    texts, labels = load_fortunes()
    train_x, train_y, test_x, test_y = split(texts, labels, seed)
    data = folder / "data"
    data.mkdir(parents=True, exist_ok=True)
    with open(folder / "fortunes.jsonl", "w", encoding="utf-8") as fh:
        for i, text in enumerate(train_x):
            fh.write(json.dumps({"id": f"train-{i}", "text": text}) + "\n")
    with open(folder / "test.jsonl", "w", encoding="utf-8") as fh:
        for i, (text, y) in enumerate(zip(test_x, test_y)):
            fh.write(json.dumps({"id": f"test-{i}", "text": text, "label": CLASSES[y]}) + "\n")
    np.savez(folder / "truth.npz", ids=np.array([f"train-{i}" for i in range(len(train_x))]), y=train_y)
    print(f"{len(texts)} fortunes ({', '.join(f'{c} {int((labels == k).sum())}' for k, c in enumerate(CLASSES))}); "
          f"train {len(train_x)} -> {folder / 'fortunes.jsonl'}, test {len(test_x)} -> {folder / 'test.jsonl'}")
    return folder


if __name__ == "__main__":
    write_example(Path(__file__).resolve().parent, seed=int(sys.argv[1]) if len(sys.argv) > 1 else 0)

"""Text augmentation: back-translation (Apertium) and synonym replacement (WordNet), offline, cached.

Declared in the same list as image transforms, for a text dataset trained with
``training.model: mlp`` (MiniLM embeddings)::

    training:
      model: mlp
      augment:
        - BackTranslation: {pivots: [spa, cat]}     # one paraphrase per pivot language
        - SynonymReplacement: {p: 0.15, copies: 1}  # WordNet synonyms for 15 % of content words

How it runs, and why:

- **Back-translation** pipes English through Debian's Apertium and back
  (``apertium -u eng-spa | apertium -u spa-eng``). Apertium costs ~0.2 s to start,
  so texts go in batches, one process pair per batch, one text per line (inner
  whitespace collapsed: a paraphrase for an embedding model needs no line
  breaks). Apertium keeps line breaks as format, so the newline is the
  separator; the line count is checked and a batch whose count comes back
  different is split in halves until the culprit is alone (its output lines are
  then joined), so a copy is never paired with the wrong original.
- **Synonym replacement** (EDA, Wei & Zou 2019) reads Debian's WordNet
  dictionary files (``/usr/share/wordnet``, or ``$WNSEARCHDIR``) directly; no
  download, no nltk. A word is replaced by a lemma of its most frequent sense
  in its most frequent part of speech (wrong-sense synonyms hurt more than
  they help); stop words and capitalised words inside a sentence (names,
  acronyms) are left alone; regular noun plurals are handled.
- **Cache.** Each text's copies are stored under ``cache_dir`` by the SHA-256
  of the transform's settings and the text, so a second run (the next turn,
  another model version) translates nothing again. Synonym draws are seeded by
  the text's hash: the same text gets the same copies whatever batch it is in.
- **Training.** Copies are embedded by the same MiniLM path as the originals
  (:class:`labelloop.models.embed.TextEmbedder`, one cache) and join *only the training
  rows of the folds their original trains in* (:func:`augmented_folds`): a copy
  never validates, never leaks its original into another fold's validation,
  and out-of-fold and pool predictions see originals only.

A missing tool is a :class:`~labelloop.exceptions.TrainingError` naming the
Debian package to install.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from labelloop.exceptions import TrainingError

__all__ = [
    "TEXT_TRANSFORMS",
    "BackTranslation",
    "SynonymReplacement",
    "WordNet",
    "TextAugmenter",
    "AugmentedRows",
    "rows_of",
    "is_text_entry",
    "parse_text_pipeline",
    "augmented_folds",
    "augment_texts",
]

WORDNET_DIR = Path("/usr/share/wordnet")


# ---------------------------------------------------------------------------------------------- settings
class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid")

    weight: float = Field(default=1.0, gt=0.0, le=1.0, description="Sample weight of a copy, relative to its original.")


class BackTranslationParams(_Params):
    pivots: list[str] = Field(default_factory=lambda: ["spa"], min_length=1)
    batch_size: int = Field(default=500, ge=1)


class SynonymReplacementParams(_Params):
    p: float = Field(default=0.15, gt=0.0, le=1.0)
    copies: int = Field(default=1, ge=1, le=20)
    senses: int = Field(default=1, ge=1, le=10)
    seed: int = 0


_PIVOT = re.compile(r"^[a-z]{2,3}$")


# ---------------------------------------------------------------------------------------------- Apertium
def _apertium_modes() -> set[str]:
    exe = shutil.which("apertium")
    if exe is None:
        raise TrainingError(
            "back-translation needs Apertium, which is not installed (no 'apertium' on PATH): "
            "apt-get install apertium-eng-spa apertium-eng-cat"
        )
    try:
        listed = subprocess.run([exe, "-l"], capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        raise TrainingError(f"back-translation: 'apertium -l' failed ({exc})") from None
    return set(listed.split())


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


class BackTranslation:
    """English -> pivot -> English paraphrases with Apertium; one copy per pivot language.

    Parameters
    ----------
    pivots : list of str, default=["spa"]
        Apertium language codes with ``eng-X`` and ``X-eng`` modes installed
        (Debian: ``apertium-eng-spa`` gives ``spa``, ``apertium-eng-cat`` gives ``cat``).
    batch_size : int, default=500
        Texts per Apertium process.
    weight : float, default=1.0
        Sample weight of a copy relative to its original.
    """

    def __init__(self, pivots: Sequence[str] = ("spa",), batch_size: int = 500, weight: float = 1.0) -> None:
        self.pivots = list(pivots)
        self.batch_size = batch_size
        self.weight = weight
        self.processes_ = 0

    def signatures(self) -> list[str]:
        """One cache namespace per copy kind (here: per pivot)."""
        return [f"BackTranslation:eng-{p}-eng" for p in self.pivots]

    def check(self) -> None:
        """Raise a TrainingError naming the package when a pivot's modes are missing."""
        modes = _apertium_modes()
        for p in self.pivots:
            if f"eng-{p}" not in modes or f"{p}-eng" not in modes:
                raise TrainingError(
                    f"back-translation via {p!r} needs Apertium's eng-{p} and {p}-eng modes: "
                    f"apt-get install apertium-eng-{p}"
                )

    def _run(self, pivot: str, lines: list[str]) -> list[str]:
        cmd = f"apertium -u eng-{pivot} | apertium -u {pivot}-eng"
        self.processes_ += 1
        try:
            done = subprocess.run(
                ["sh", "-c", cmd], input="\n".join(lines) + "\n", capture_output=True, text=True,
                timeout=60 + len(lines), encoding="utf-8", errors="replace",
            )
        except subprocess.TimeoutExpired:
            raise TrainingError(f"back-translation via {pivot!r}: Apertium took too long on {len(lines)} texts") from None
        if done.returncode != 0:
            raise TrainingError(f"back-translation via {pivot!r}: '{cmd}' failed: {done.stderr.strip()[:300]}")
        out = done.stdout.split("\n")
        if out and out[-1] == "":
            out.pop()
        return out

    def _translate(self, pivot: str, lines: list[str]) -> list[str]:
        out = self._run(pivot, lines)
        if len(out) == len(lines):
            return [o.strip() for o in out]
        if len(lines) == 1:  # Apertium split one text over several lines: it is still that text's copy
            return [" ".join(o.strip() for o in out)]
        half = len(lines) // 2  # the line count drifted somewhere: find where, never misalign
        return self._translate(pivot, lines[:half]) + self._translate(pivot, lines[half:])

    def augment(self, texts: Sequence[str], signature: str) -> list[list[str]]:
        """The copies of ``texts`` for one signature (one pivot)."""
        pivot = signature.split("-")[1]
        lines = [_one_line(t) for t in texts]
        out: list[str] = []
        for s in range(0, len(lines), self.batch_size):
            out += self._translate(pivot, lines[s : s + self.batch_size])
        return [[o] if o else [] for o in out]


# ---------------------------------------------------------------------------------------------- WordNet
_WORDNETS: dict[str, "WordNet"] = {}
_WN_LOCK = threading.Lock()
_POS = {"n": "noun", "v": "verb", "a": "adj", "r": "adv"}


class WordNet:
    """A reader of WordNet 3.0's dictionary files (``index.*``, ``data.*``), as Debian's ``wordnet`` installs them.

    Parameters
    ----------
    path : path, optional
        The dictionary folder; default ``$WNSEARCHDIR`` or ``/usr/share/wordnet``.

    >>> wn = WordNet.shared()                 # one loaded index per process
    >>> wn.synonyms("computer")[:3]
    ['computing machine', 'computing device', 'data processor']
    """

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path or os.environ.get("WNSEARCHDIR") or WORDNET_DIR)
        need = [self.path / f"{kind}.{pos}" for pos in _POS.values() for kind in ("index", "data")]
        missing = [p.name for p in need if not p.is_file()]
        if missing:
            raise TrainingError(
                f"synonym replacement needs WordNet's dictionary files in {self.path} "
                f"(missing: {', '.join(missing)}): apt-get install wordnet"
            )
        # lemma -> pos -> (tagged sense count, synset offsets in sense order)
        self._index: dict[str, dict[str, tuple[int, list[int]]]] = {}
        for pos, name in _POS.items():
            with open(self.path / f"index.{name}", encoding="utf-8", errors="replace") as fh:
                for line in fh:
                    if line.startswith(" "):
                        continue  # the licence header
                    f = line.split()
                    n_syn, n_ptr = int(f[2]), int(f[3])
                    tagged = int(f[5 + n_ptr])
                    offsets = [int(o) for o in f[6 + n_ptr : 6 + n_ptr + n_syn]]
                    self._index.setdefault(f[0], {})[pos] = (tagged, offsets)
        self._cache: dict[tuple[str, int], list[str]] = {}

    @classmethod
    def shared(cls, path: str | Path | None = None) -> "WordNet":
        """One loaded reader per folder and process (loading the index takes ~1 s)."""
        key = str(Path(path or os.environ.get("WNSEARCHDIR") or WORDNET_DIR))
        with _WN_LOCK:
            if key not in _WORDNETS:
                _WORDNETS[key] = cls(key)
            return _WORDNETS[key]

    def __contains__(self, lemma: str) -> bool:
        return lemma in self._index

    def _synset_words(self, pos: str, offset: int) -> list[str]:
        with open(self.path / f"data.{_POS[pos]}", "rb") as fh:
            fh.seek(offset)
            f = fh.readline().decode("utf-8", "replace").split()
        n = int(f[3], 16)
        words = f[4 : 4 + 2 * n : 2]
        return [re.sub(r"\([a-z]+\)$", "", w).replace("_", " ") for w in words]  # drop adjective markers

    def synonyms(self, lemma: str, senses: int = 1) -> list[str]:
        """Other lemmas of ``lemma``'s ``senses`` most frequent senses that have any, in its most frequent part of speech."""
        lemma = lemma.lower()
        key = (lemma, senses)
        if key not in self._cache:
            entry = self._index.get(lemma)
            found: list[str] = []
            if entry:
                # The most frequently tagged part of speech; ties in n, v, a, r order.
                pos = max(entry, key=lambda p: (entry[p][0], -"nvar".index(p)))
                used = 0
                # A word's first sense is often a synset of its own (love: {love}); look a little further,
                # but never past the commonest few senses, where synonyms drift off topic.
                for offset in entry[pos][1][: senses + 2]:
                    words = [w for w in self._synset_words(pos, offset) if w.lower() != lemma and w not in found]
                    found += words
                    used += bool(words)
                    if used == senses:
                        break
            self._cache[key] = found
        return self._cache[key]


def _stop_words() -> frozenset[str]:
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    return frozenset(ENGLISH_STOP_WORDS)


_WORD = re.compile(r"(?<![-'])\b[A-Za-z]{3,}\b(?![-'])")  # not parts of hyphenated words or contractions


def _plural(word: str) -> str:
    if re.search(r"(s|x|z|ch|sh)$", word):
        return word + "es"
    if re.search(r"[^aeiou]y$", word):
        return word[:-1] + "ies"
    return word + "s"


def _match_case(new: str, old: str) -> str:
    if old.isupper() and len(old) > 1:
        return new.upper()
    if old[0].isupper():
        return new[0].upper() + new[1:]
    return new


class SynonymReplacement:
    """Replace a fraction of a text's content words by WordNet synonyms (EDA's synonym replacement).

    Parameters
    ----------
    p : float, default=0.15
        Fraction of the replaceable words (not stop words, known to WordNet)
        replaced in each copy; at least one.
    copies : int, default=1
        Copies per text.
    senses : int, default=1
        Synonyms come from this many of the word's most frequent senses (among its first ``senses + 2``).
    seed : int, default=0
        Mixed with each text's hash: a text's copies do not depend on its batch.
    weight : float, default=1.0
        Sample weight of a copy relative to its original.
    wordnet_dir : path, optional
        WordNet's dictionary folder (default ``$WNSEARCHDIR`` or ``/usr/share/wordnet``).
    """

    def __init__(
        self, p: float = 0.15, copies: int = 1, senses: int = 1, seed: int = 0, weight: float = 1.0,
        wordnet_dir: str | Path | None = None,
    ) -> None:
        self.p = p
        self.copies = copies
        self.senses = senses
        self.seed = seed
        self.weight = weight
        self.wordnet_dir = wordnet_dir

    def signatures(self) -> list[str]:
        return [f"SynonymReplacement:p={self.p}:copies={self.copies}:senses={self.senses}:seed={self.seed}"]

    def check(self) -> None:
        WordNet.shared(self.wordnet_dir)

    def _candidates(self, wn: WordNet, word: str) -> list[str]:
        low = word.lower()
        if low in wn:
            return wn.synonyms(low, self.senses)
        if low.endswith("s") and "n" in wn._index.get(low[:-1], {}):  # a regular noun plural
            base = low[:-2] if low.endswith("es") and low[:-2] in wn else low[:-1]
            return [_plural(s) for s in wn.synonyms(base, self.senses) if " " not in s]
        return []

    def replace(self, text: str) -> list[str]:
        """The copies of one text (fewer when it has no replaceable word)."""
        wn = WordNet.shared(self.wordnet_dir)
        stops = _stop_words()
        text = _one_line(text)
        spots = []
        for m in _WORD.finditer(text):
            word = m.group()
            if not word.islower() and text[: m.start()].rstrip()[-1:] not in ("", ".", "!", "?"):
                continue  # a capital inside a sentence: a name or an acronym, not a common word
            if word.lower() not in stops:
                options = self._candidates(wn, m.group())
                if options:
                    spots.append((m.start(), m.end(), options))
        if not spots:
            return []
        seed = int(hashlib.sha256(f"{self.seed}\0{text}".encode("utf-8", "surrogatepass")).hexdigest()[:16], 16)
        rng = np.random.default_rng(seed)
        k = max(1, int(round(self.p * len(spots))))
        out: list[str] = []
        for _ in range(self.copies):
            chosen = sorted(rng.choice(len(spots), size=k, replace=False))
            pieces, last = [], 0
            for i in chosen:
                start, end, options = spots[i]
                pieces += [text[last:start], _match_case(options[rng.integers(len(options))], text[start:end])]
                last = end
            copy = "".join(pieces) + text[last:]
            if copy != text and copy not in out:
                out.append(copy)
        return out

    def augment(self, texts: Sequence[str], signature: str) -> list[list[str]]:
        return [self.replace(t) for t in texts]


# ---------------------------------------------------------------------------------------------- pipeline
TEXT_TRANSFORMS: dict[str, tuple[type, type[_Params]]] = {
    "BackTranslation": (BackTranslation, BackTranslationParams),
    "SynonymReplacement": (SynonymReplacement, SynonymReplacementParams),
}


def is_text_entry(entry: Any) -> bool:
    """Whether an ``augment`` entry names a text transform."""
    if isinstance(entry, str):
        return entry in TEXT_TRANSFORMS
    return isinstance(entry, dict) and len(entry) == 1 and next(iter(entry)) in TEXT_TRANSFORMS


def parse_text_pipeline(entries: Sequence[Any] | None) -> list[Any]:
    """Build the text transforms of an ``augment`` list, refusing bad entries by index and name.

    >>> [type(t).__name__ for t in parse_text_pipeline([{"BackTranslation": {"pivots": ["spa", "cat"]}}])]
    ['BackTranslation']
    >>> parse_text_pipeline([{"SynonymReplacement": {"p": 2}}])
    Traceback (most recent call last):
    ...
    ValueError: augment[0]: SynonymReplacement: bad parameter 'p': Input should be less than or equal to 1 (got 2)
    """
    from labelloop.models.augment import split_entry  # the one reader of augment entries

    out = []
    for index, entry in enumerate(entries or []):
        where, name, params = split_entry(index, entry, "{BackTranslation: {pivots: [spa]}}")
        if name not in TEXT_TRANSFORMS:
            raise ValueError(f"{where}: unknown text transform {name!r}; expected one of {sorted(TEXT_TRANSFORMS)}")
        if not isinstance(params, dict):
            raise ValueError(f"{where}: {name}: parameters must be a mapping (got {params!r})")
        cls, schema = TEXT_TRANSFORMS[name]
        try:
            valid = schema.model_validate(params)
        except ValidationError as exc:
            err = exc.errors()[0]
            param = ".".join(str(p) for p in err["loc"]) or "?"
            reason = "unknown parameter" if err["type"] == "extra_forbidden" else err["msg"]
            raise ValueError(f"{where}: {name}: bad parameter {param!r}: {reason} (got {err.get('input')!r})") from None
        if name == "BackTranslation":
            bad = [p for p in valid.pivots if not _PIVOT.match(p)]
            if bad or len(set(valid.pivots)) != len(valid.pivots):
                raise ValueError(
                    f"{where}: {name}: pivots must be distinct Apertium language codes like 'spa' or 'cat' "
                    f"(got {valid.pivots!r})"
                )
        out.append(cls(**valid.model_dump()))
    return out


class TextAugmenter:
    """Run text transforms over many texts, in batches, cached by content hash.

    Parameters
    ----------
    transforms : list
        :class:`BackTranslation` / :class:`SynonymReplacement` objects or ``augment`` entries.
    cache_dir : path, optional
        Where each text's copies are kept (``<cache_dir>/<sha[:2]>/<sha>.json``); None: no cache.

    Attributes (after :meth:`augment`)
    ----------
    cached_, computed_ : int
        Text x transform results read from the cache / computed.
    """

    def __init__(self, transforms: Sequence[Any], cache_dir: str | Path | None = None) -> None:
        parsed = [t if hasattr(t, "signatures") else None for t in transforms]
        if any(t is None for t in parsed):
            parsed = parse_text_pipeline(transforms)
        self.transforms = parsed
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.cached_ = 0
        self.computed_ = 0

    def __bool__(self) -> bool:
        return bool(self.transforms)

    @staticmethod
    def key(signature: str, text: str) -> str:
        return hashlib.sha256(f"{signature}\0{_one_line(text)}".encode("utf-8", "surrogatepass")).hexdigest()

    def _path(self, key: str) -> Path:
        assert self.cache_dir is not None
        return self.cache_dir / key[:2] / f"{key}.json"

    def _read(self, key: str) -> list[str] | None:
        if self.cache_dir is None:
            return None
        try:
            value = json.loads(self._path(key).read_text(encoding="utf-8"))
            return value if isinstance(value, list) else None
        except (OSError, ValueError):
            return None  # absent or torn: compute again

    def _write(self, key: str, copies: list[str]) -> None:
        if self.cache_dir is None:
            return
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_text(json.dumps(copies, ensure_ascii=False), encoding="utf-8")
        os.replace(tmp, path)  # atomic: a reader never sees half a file

    def copies(self, texts: Sequence[str]) -> list[list[tuple[str, float]]]:
        """Per text, its distinct copies (differing from it) and each copy's sample weight."""
        texts = [str(t) for t in texts]
        result: list[list[tuple[str, float]]] = [[] for _ in texts]
        for transform in self.transforms:
            for signature in transform.signatures():
                keys = [self.key(signature, t) for t in texts]
                found: dict[str, list[str]] = {}
                todo: dict[str, int] = {}
                for i, key in enumerate(keys):
                    if key in found or key in todo:
                        continue
                    cached = self._read(key)
                    if cached is None:
                        todo[key] = i
                    else:
                        found[key] = cached
                        self.cached_ += 1
                if todo:
                    transform.check()
                    outs = transform.augment([texts[i] for i in todo.values()], signature)
                    for key, copies in zip(todo, outs):
                        found[key] = copies
                        self._write(key, copies)
                        self.computed_ += 1
                for i, key in enumerate(keys):
                    own = _one_line(texts[i])
                    for c in found[key]:
                        if c and c != own and all(c != prev for prev, _ in result[i]):
                            result[i].append((c, float(transform.weight)))
        return result

    def augment(self, texts: Sequence[str]) -> tuple[list[str], np.ndarray, np.ndarray]:
        """Flat copies, the index of each copy's original in ``texts``, and each copy's weight."""
        flat, origin, weight = [], [], []
        for i, copies in enumerate(self.copies(texts)):
            for text, w in copies:
                flat.append(text)
                origin.append(i)
                weight.append(w)
        return flat, np.asarray(origin, dtype=np.int64), np.asarray(weight, dtype=np.float32)


# ---------------------------------------------------------------------------------------------- training
@dataclass
class AugmentedRows:
    """Augmented training rows: features, the row of each one's original, and a weight factor."""

    X: np.ndarray
    origin: np.ndarray
    weight: np.ndarray
    texts: list[str] | None = None

    def __len__(self) -> int:
        return len(self.origin)


def rows_of(rows: AugmentedRows | None, positions: np.ndarray) -> AugmentedRows | None:
    """The copies of the training rows at ``positions``, renumbered to index ``X[positions]``.

    >>> rows = AugmentedRows(np.arange(6.0).reshape(3, 2), np.array([0, 2, 2]), np.ones(3))
    >>> rows_of(rows, np.array([1, 2])).origin.tolist()
    [1, 1]
    """
    if rows is None or len(rows) == 0:
        return rows
    positions = np.asarray(positions)
    new_index = np.full(int(max(positions.max(initial=-1), rows.origin.max())) + 1, -1, np.int64)
    new_index[positions] = np.arange(len(positions))
    mapped = new_index[rows.origin]
    keep = mapped >= 0
    texts = [t for t, k in zip(rows.texts, keep) if k] if rows.texts is not None else None
    return AugmentedRows(X=rows.X[keep], origin=mapped[keep], weight=rows.weight[keep], texts=texts)


def augment_texts(
    texts: Sequence[str], augmenter: TextAugmenter, embed: Callable[[list[str]], np.ndarray]
) -> AugmentedRows:
    """Copies of ``texts`` embedded by ``embed`` (the same function the originals go through)."""
    flat, origin, weight = augmenter.augment(texts)
    X = embed(flat) if flat else np.zeros((0, 0), np.float32)
    return AugmentedRows(X=np.asarray(X, np.float32), origin=origin, weight=weight, texts=flat)


def augmented_folds(
    X: np.ndarray, Y: np.ndarray, w: np.ndarray, train_idx: Sequence[np.ndarray], rows: AugmentedRows | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[np.ndarray]]:
    """Append the augmented rows; each fold trains on the copies of its own training rows only.

    Copies inherit their original's target and weight (times their own
    factor). Rows ``>= len(X)`` are copies; validation indices are unchanged,
    so no copy is ever validated on or scored out of fold.

    >>> X, Y, w = np.zeros((4, 2)), np.eye(2)[[0, 1, 0, 1]], np.ones(4)
    >>> rows = AugmentedRows(np.ones((2, 2)), np.array([0, 3]), np.array([0.5, 0.5]))
    >>> X2, Y2, w2, tr = augmented_folds(X, Y, w, [np.array([0, 1]), np.array([2, 3])], rows)
    >>> [t.tolist() for t in tr], Y2[4:].argmax(1).tolist(), w2[4:].tolist()
    ([[0, 1, 4], [2, 3, 5]], [0, 1], [0.5, 0.5])
    """
    train_idx = [np.asarray(t) for t in train_idx]
    if rows is None or len(rows) == 0:
        return X, Y, w, train_idx
    origin = np.asarray(rows.origin)
    if origin.min() < 0 or origin.max() >= len(X):
        raise TrainingError(f"augmented rows point at originals outside the {len(X)} training items")
    if rows.X.shape[1:] != X.shape[1:]:
        raise TrainingError(f"augmented rows have shape {rows.X.shape[1:]} but the items {X.shape[1:]}")
    n = len(X)
    X2 = np.concatenate([X, rows.X.astype(X.dtype, copy=False)])
    Y2 = np.concatenate([Y, Y[origin]])
    w2 = np.concatenate([w, (w[origin] * rows.weight).astype(w.dtype, copy=False)])
    tr = [np.concatenate([t, n + np.flatnonzero(np.isin(origin, t))]) for t in train_idx]
    return X2, Y2, w2, tr

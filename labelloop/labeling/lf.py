"""Labeling functions: small programs that vote a class for an item or abstain (``-1``).

Kinds ready to use:

* :func:`labeling_function` — decorate any Python function ``f(x) -> int``;
* :class:`KeywordLF` — any of a list of words (word-bounded, case-insensitive);
* :class:`RegexLF` — a regular expression;
* :func:`heuristic_lf` — a Python function named by import path (``pkg.mod:func``), as the config declares it;
* :class:`ModelLF` — a fitted scikit-learn classifier, voting when it is confident enough;
* :class:`EmbeddingSimilarityLF` — cosine similarity of MiniLM sentence embeddings to example texts per class.

An item ``x`` is whatever the applier is given: a string, or a mapping / row
with a ``text`` field (``field=`` picks another). Every LF has
``apply_batch(xs) -> int array`` so the applier can run vectorized kinds (regex
over a batch, a model over a feature matrix) in one call.

Examples
--------
>>> @labeling_function()
... def mentions_unix(x):
...     return 0 if "unix" in x.lower() else ABSTAIN
>>> mentions_unix("Unix is user friendly"), mentions_unix("hello")
(0, -1)
>>> KeywordLF("kw_space", ["planet", "stars?"], label=2)("Look at the Stars")
2
"""

from __future__ import annotations

import copy
import hashlib
import importlib
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from labelloop.exceptions import LabelingFunctionError

__all__ = [
    "ABSTAIN",
    "LabelingFunction",
    "labeling_function",
    "KeywordLF",
    "RegexLF",
    "ModelLF",
    "EmbeddingSimilarityLF",
    "heuristic_lf",
    "lf_set_version",
    "lfs_from_config",
]

ABSTAIN = -1


def _text(x: Any, field: str | None) -> str:
    """The text of an item: the item itself when it is a string, else its ``field``."""
    if isinstance(x, str):
        return x
    key = field or "text"
    if isinstance(x, Mapping) or hasattr(x, "__getitem__") and not isinstance(x, (list, tuple)):
        try:
            value = x[key]
        except (KeyError, IndexError, TypeError):
            value = getattr(x, key, None)
    else:
        value = getattr(x, key, None)
    if value is None:
        raise TypeError(f"item has no {key!r} field (got {type(x).__name__})")
    return str(value)


class LabelingFunction:
    """A named function ``f(x) -> class id or -1``.

    Parameters
    ----------
    name : str
        Unique name; it appears in the label matrix columns, analyses and errors.
    f : callable
        ``f(x, **resources) -> int``.
    resources : mapping, optional
        Keyword arguments passed to ``f`` on every call (lookup tables, models).
    """

    #: A short kind name for reports and the LF-set version.
    kind = "python"

    def __init__(self, name: str, f: Callable[..., int] | None = None, resources: Mapping[str, Any] | None = None) -> None:
        if not isinstance(name, str) or not name:
            raise LabelingFunctionError(f"a labeling function needs a non-empty name (got {name!r})")
        self.name = name
        self._f = f
        self._resources = dict(resources or {})

    def __call__(self, x: Any) -> int:
        if self._f is None:
            raise NotImplementedError(f"labeling function {self.name!r} has no function")
        return self._f(x, **self._resources)

    def apply_batch(self, xs: Sequence[Any]) -> np.ndarray:
        """Votes for a batch (one call per item unless a subclass vectorizes)."""
        return np.fromiter((self(x) for x in xs), dtype=np.int64, count=len(xs))

    def fingerprint(self) -> str:
        """What defines this LF's votes, for the LF-set version (code identity for plain functions)."""
        f = self._f
        code = getattr(f, "__code__", None)
        body = code.co_code.hex() + repr(code.co_consts) if code is not None else repr(f)
        return f"{self.kind}:{self.name}:{getattr(f, '__module__', '')}.{getattr(f, '__qualname__', '')}:{body}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


def labeling_function(name: str | None = None, resources: Mapping[str, Any] | None = None) -> Callable[[Callable[..., int]], LabelingFunction]:
    """Decorator turning ``f(x) -> int`` into a :class:`LabelingFunction` named after ``f``.

    Use it with parentheses: ``@labeling_function()``.
    """
    if callable(name):
        raise LabelingFunctionError(
            f"labeling_function is used without parentheses on {getattr(name, '__name__', name)!r}: "
            "write @labeling_function() instead of @labeling_function"
        )

    def decorate(f: Callable[..., int]) -> LabelingFunction:
        return LabelingFunction(name or f.__name__, f, resources=resources)

    return decorate


def _check_label(name: str, label: Any, n_classes: int | None) -> int:
    if isinstance(label, bool) or not isinstance(label, (int, np.integer)) or label < 0:
        raise LabelingFunctionError(f"labeling function {name!r}: label must be a class id >= 0 (got {label!r})")
    if n_classes is not None and label >= n_classes:
        raise LabelingFunctionError(
            f"labeling function {name!r}: label must be < {n_classes}, the number of classes (got {label})"
        )
    return int(label)


class RegexLF(LabelingFunction):
    """Votes ``label`` when ``pattern`` is found in the item's text, else abstains.

    Parameters
    ----------
    name : str
    pattern : str
        A Python regular expression (``re.search``).
    label : int
        The class voted.
    ignore_case : bool, default=True
    field : str, optional
        The item field holding the text (default ``text``; a string item is its own text).
    n_classes : int, optional
        When given, ``label`` is checked against it.
    """

    kind = "regex"

    def __init__(self, name: str, pattern: str, label: int, ignore_case: bool = True, field: str | None = None,
                 n_classes: int | None = None) -> None:
        super().__init__(name)
        self.label = _check_label(name, label, n_classes)
        self.pattern = pattern
        self.ignore_case = ignore_case
        self.field = field
        try:
            self._regex = re.compile(pattern, re.IGNORECASE if ignore_case else 0)
        except re.error as exc:
            raise LabelingFunctionError(f"labeling function {name!r}: invalid regex {pattern!r} ({exc})") from None

    def __call__(self, x: Any) -> int:
        return self.label if self._regex.search(_text(x, self.field)) else ABSTAIN

    def apply_batch(self, xs: Sequence[Any]) -> np.ndarray:
        search, label, field = self._regex.search, self.label, self.field
        return np.fromiter((label if search(_text(x, field)) else ABSTAIN for x in xs), dtype=np.int64, count=len(xs))

    def fingerprint(self) -> str:
        return f"{self.kind}:{self.name}:{self.label}:{int(self.ignore_case)}:{self.field}:{self.pattern}"


class KeywordLF(RegexLF):
    """Votes ``label`` when any keyword occurs as a whole word (keywords may be regexes, e.g. ``bugs?``)."""

    kind = "keyword"

    def __init__(self, name: str, keywords: Iterable[str], label: int, ignore_case: bool = True,
                 field: str | None = None, n_classes: int | None = None) -> None:
        keywords = [k for k in keywords]
        if not keywords or any(not isinstance(k, str) or not k.strip() for k in keywords):
            raise LabelingFunctionError(f"labeling function {name!r}: keywords must be non-empty strings (got {keywords!r})")
        self.keywords = keywords
        pattern = r"\b(?:" + "|".join(keywords) + r")\b"
        super().__init__(name, pattern, label, ignore_case=ignore_case, field=field, n_classes=n_classes)


def heuristic_lf(name: str, path: str, resources: Mapping[str, Any] | None = None) -> LabelingFunction:
    """A labeling function from an import path ``package.module:function``.

    The target may be a plain function ``f(x) -> int`` or already a
    :class:`LabelingFunction`; the import happens now so a typo fails before
    anything runs.
    """
    module_name, _, attr = path.partition(":")
    if not module_name or not attr:
        raise LabelingFunctionError(f"labeling function {name!r}: path must look like 'package.module:function' (got {path!r})")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise LabelingFunctionError(f"labeling function {name!r}: cannot import module {module_name!r} ({exc})") from None
    target = module
    for part in attr.split("."):
        if not hasattr(target, part):
            raise LabelingFunctionError(f"labeling function {name!r}: module {module_name!r} has no attribute {attr!r}")
        target = getattr(target, part)
    if isinstance(target, LabelingFunction):
        lf = copy.copy(target)  # already an LF (say, decorated): keep its kind and code, take the config's name
        lf.name = name
        return lf
    if not callable(target):
        raise LabelingFunctionError(f"labeling function {name!r}: {path!r} is not callable (got {type(target).__name__})")
    lf = LabelingFunction(name, target, resources=resources)
    lf.kind = "heuristic"
    return lf


class ModelLF(LabelingFunction):
    """Votes a fitted classifier's most probable class when its probability reaches ``threshold``.

    Parameters
    ----------
    name : str
    estimator : fitted estimator with ``predict_proba``
    featurize : callable, optional
        ``featurize(xs) -> X`` for a batch of items; default: the items are rows of ``X`` already.
    threshold : float, default=0.0
        Abstain when the top probability is below it.
    classes : sequence of int, optional
        Class id of each ``predict_proba`` column; default ``estimator.classes_``.
    version : str, default=""
        Model version, part of the LF-set version (a retrained model changes it).
    """

    kind = "model"

    def __init__(self, name: str, estimator: Any, featurize: Callable[[Sequence[Any]], Any] | None = None,
                 threshold: float = 0.0, classes: Sequence[int] | None = None, version: str = "") -> None:
        super().__init__(name)
        if not hasattr(estimator, "predict_proba"):
            raise TypeError(f"labeling function {name!r}: the estimator needs predict_proba (got {type(estimator).__name__})")
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"labeling function {name!r}: threshold must be in [0, 1] (got {threshold})")
        self.estimator = estimator
        self.featurize = featurize
        self.threshold = threshold
        self.classes = classes
        self.version = version

    def apply_batch(self, xs: Sequence[Any]) -> np.ndarray:
        if len(xs) == 0:
            return np.zeros(0, dtype=np.int64)
        X = self.featurize(xs) if self.featurize is not None else np.asarray(xs)
        proba = self.estimator.predict_proba(X)
        classes = np.asarray(self.classes if self.classes is not None else getattr(self.estimator, "classes_", range(proba.shape[1])))
        top = proba.argmax(axis=1)
        return np.where(proba.max(axis=1) >= self.threshold, classes[top], ABSTAIN).astype(np.int64)

    def __call__(self, x: Any) -> int:
        return int(self.apply_batch([x])[0])

    def fingerprint(self) -> str:
        return f"{self.kind}:{self.name}:{type(self.estimator).__name__}:{self.version}:{self.threshold}"


class EmbeddingSimilarityLF(LabelingFunction):
    """Votes the class whose example texts are most similar (cosine of MiniLM embeddings).

    Parameters
    ----------
    name : str
    examples : mapping {class id: list of example texts}
        A few texts per class; their normalized mean embedding is the class prototype.
    embedder : labelloop.models.embed.TextEmbedder
        Gives ``encode(texts) -> (n, d)`` normalized embeddings (cached by content hash).
    threshold : float, default=0.3
        Abstain when the best cosine similarity is below it.
    margin : float, default=0.0
        Abstain when the best class beats the second by less than this.
    field : str, optional
        The item field holding the text.
    """

    kind = "embedding"

    def __init__(self, name: str, examples: Mapping[int, Sequence[str]], embedder: Any, threshold: float = 0.3,
                 margin: float = 0.0, field: str | None = None) -> None:
        super().__init__(name)
        if not examples:
            raise LabelingFunctionError(f"labeling function {name!r}: needs example texts for at least one class")
        for label, texts in examples.items():
            _check_label(name, label, None)
            if not texts:
                raise LabelingFunctionError(f"labeling function {name!r}: class {label} has no example texts")
        self.examples = {int(k): list(v) for k, v in examples.items()}
        self.embedder = embedder
        self.threshold = threshold
        self.margin = margin
        self.field = field
        self._prototypes: np.ndarray | None = None

    def _protos(self) -> np.ndarray:
        if self._prototypes is None:
            rows = []
            for texts in self.examples.values():
                mean = np.asarray(self.embedder.encode(list(texts))).mean(axis=0)
                rows.append(mean / max(np.linalg.norm(mean), 1e-12))
            self._prototypes = np.stack(rows)
        return self._prototypes

    def apply_batch(self, xs: Sequence[Any]) -> np.ndarray:
        if len(xs) == 0:
            return np.zeros(0, dtype=np.int64)
        emb = np.asarray(self.embedder.encode([_text(x, self.field) for x in xs]))
        sims = emb @ self._protos().T
        labels = np.array(list(self.examples), dtype=np.int64)
        order = np.argsort(-sims, axis=1)
        best = sims[np.arange(len(xs)), order[:, 0]]
        second = sims[np.arange(len(xs)), order[:, 1]] if sims.shape[1] > 1 else np.full(len(xs), -np.inf)
        ok = (best >= self.threshold) & (best - second >= self.margin)
        return np.where(ok, labels[order[:, 0]], ABSTAIN)

    def __call__(self, x: Any) -> int:
        return int(self.apply_batch([x])[0])

    def fingerprint(self) -> str:
        body = repr(sorted(self.examples.items()))
        return f"{self.kind}:{self.name}:{self.threshold}:{self.margin}:{self.field}:{body}"


def lf_set_version(lfs: Sequence[LabelingFunction]) -> str:
    """A short hash of the LF set (names, kinds, patterns, code): the source name of its weak labels.

    Changing any LF changes the version, so labels from the old set stay
    distinguishable in the append-only store.
    """
    digest = hashlib.sha256()
    for lf in lfs:
        digest.update(lf.fingerprint().encode("utf-8", "replace"))
        digest.update(b"\0")
    return digest.hexdigest()[:12]


def lfs_from_config(lf_configs: Sequence[Any], classes: Sequence[str]) -> list[LabelingFunction]:
    """LabelingFunction objects from the config's ``weak.lfs`` entries (:class:`labelloop.config.LFConfig`).

    Heuristics are imported here, so a wrong import path fails before anything runs.
    """
    classes = list(classes)
    built: list[LabelingFunction] = []
    for cfg in lf_configs:
        label = None
        if cfg.class_ is not None:
            if cfg.class_ not in classes:
                raise LabelingFunctionError(f"labeling function {cfg.name!r}: unknown class {cfg.class_!r}; expected one of {classes}")
            label = classes.index(cfg.class_)
        if cfg.kind == "keyword":
            built.append(KeywordLF(cfg.name, cfg.keywords, label, ignore_case=cfg.ignore_case, field=cfg.field,
                                   n_classes=len(classes)))
        elif cfg.kind == "regex":
            built.append(RegexLF(cfg.name, cfg.pattern, label, ignore_case=cfg.ignore_case, field=cfg.field,
                                 n_classes=len(classes)))
        elif cfg.kind == "heuristic":
            built.append(heuristic_lf(cfg.name, cfg.path))
        else:  # the config model only allows the kinds above
            raise LabelingFunctionError(f"labeling function {cfg.name!r}: unknown kind {cfg.kind!r}")
    return built

"""Text tasks of the weak-supervision benchmark, built from Debian's fortune files (offline, real text).

Each task is a set of fortune files as classes plus its own keyword LFs, written from the class names before any
label model was run on it (so no default is tuned to them). ``fortunes4`` is the ANCHORS.md protocol (its LFs are
those of examples/fortunes/labelloop.yaml); ``life5`` and ``culture5`` are new.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "examples" / "fortunes")]

from prepare import FORTUNES_DIR, read_fortune_file  # noqa: E402

from labelloop.config import LFConfig, load_config  # noqa: E402
from labelloop.labeling.lf import lfs_from_config  # noqa: E402

__all__ = ["TASKS", "load_task"]


def _split_top(words: str) -> list[str]:
    """``a|b(c|d)`` -> ``["a", "b(c|d)"]``: split on the bars outside parentheses."""
    out, depth, start = [], 0, 0
    for i, ch in enumerate(words):
        depth += {"(": 1, ")": -1}.get(ch, 0)
        if ch == "|" and depth == 0:
            out.append(words[start:i])
            start = i + 1
    return out + [words[start:]]


def _kw(name: str, cls: str, words: str) -> dict:
    return {"name": name, "kind": "keyword", "class": cls, "keywords": _split_top(words)}


TASKS: dict[str, dict] = {
    "fortunes4": {"classes": ["computers", "politics", "science", "men-women"], "lfs": "examples"},
    "life5": {
        "classes": ["work", "law", "education", "food", "drugs"],
        "lfs": [
            _kw("work_terms", "work", r"work\w*|jobs?|boss(es)?|office|employ\w*|salar(y|ies)|careers?|manag\w*|"
                r"meetings?|committees?"),
            _kw("work_life", "work", r"busy|lazy|labou?r|hours|wages?|hire|hired|fired|promot\w*|overtime|deadlines?"),
            _kw("law_terms", "law", r"laws?|lawyers?|legal|judges?|courts?|attorneys?|jury|juries|crim\w*|justice|"
                r"sue|suing|lawsuits?|police|prison|jail|guilty|innocent|illegal"),
            _kw("law_process", "law", r"statutes?|constitution\w*|contracts?|witness\w*|trials?|verdicts?|appeals?|"
                r"sentenced?|testif\w*"),
            _kw("education_terms", "education", r"schools?|teach\w*|students?|college|universit(y|ies)|professors?|"
                r"educat\w*|classroom|grades?|exams?|homework|degrees?|graduat\w*"),
            _kw("education_learning", "education", r"learn\w*|knowledge|study|studies|studying|lessons?|ignoran\w*"),
            _kw("food_terms", "food", r"food|eat|eats|eating|ate|dinner|lunch|breakfast|cook\w*|meals?|bread|cheese|"
                r"meat|chicken|vegetables?|fruit|apples?|chocolate|restaurants?|hungry|diet\w*|recipes?|kitchen|"
                r"pizza|sugar|cakes?|delicious|taste"),
            _kw("food_drink", "food", r"coffee|tea|wine|soup|butter|eggs?|salt|pepper|cream"),
            _kw("drugs_terms", "drugs", r"drugs?|marijuana|cocaine|heroin|lsd|stoned|smok\w*|addict\w*|pills?|"
                r"tripping|weed|dope|narcotic\w*"),
            _kw("drugs_alcohol", "drugs", r"alcohol\w*|drunk\w*|drink\w*|booze|whiske?y|hangover|liquor|beer|high"),
        ],
    },
    "culture5": {
        "classes": ["songs-poems", "art", "literature", "startrek", "sports"],
        "lfs": [
            _kw("songs_terms", "songs-poems", r"songs?|sing\w*|sang|poems?|poet\w*|rhym\w*|verses?|music\w*|"
                r"melod\w*|chorus|lyrics?|tunes?"),
            {"name": "songs_shape", "kind": "regex", "class": "songs-poems", "pattern": r"(.*\n){6,}"},
            _kw("art_terms", "art", r"art|arts|artists?|paint\w*|pictures?|museums?|sculpt\w*|beauty|beautiful|"
                r"creativ\w*|drawings?|canvas"),
            _kw("art_stage", "art", r"films?|movies?|theat(er|re)s?|actors?|dance|dancing|photograph\w*|critics?"),
            _kw("literature_terms", "literature", r"books?|novel\w*|writ(e|er|ers|ing|ten)|authors?|literar\w*|"
                r"literature|stor(y|ies)|publish\w*|chapters?|prose|library"),
            _kw("literature_names", "literature", r"shakespeare|twain|dickens|hemingway|tolstoy|wilde|shaw|"
                r"poe|kafka|orwell"),
            _kw("startrek_names", "startrek", r"kirk|spock|mccoy|scotty|sulu|uhura|chekov|bones|picard"),
            _kw("startrek_terms", "startrek", r"enterprise|captain|starfleet|vulcans?|klingons?|federation|"
                r"romulans?|phasers?|beam|warp|galax\w*|aliens?|planets?"),
            _kw("sports_terms", "sports", r"sports?|team|baseball|football|golf|tennis|basketball|hockey|soccer|"
                r"coach|athlet\w*|olympic\w*|fishing|bowling|ski(ing)?"),
            _kw("sports_play", "sports", r"games?|play(er|ers|ing|ed)?|win|wins|winning|lose|losing|scor\w*|balls?|"
                r"race|champion\w*"),
        ],
    },
}


def load_task(name: str) -> tuple[list[str], np.ndarray, list[str], list]:
    """Texts, class ids, class names and LF objects of a task; texts found in two classes are dropped."""
    spec = TASKS[name]
    classes = spec["classes"]
    per_class = {c: read_fortune_file(FORTUNES_DIR / c) for c in classes}
    seen = Counter(t for texts in per_class.values() for t in set(texts))
    texts: list[str] = []
    labels: list[int] = []
    for k, c in enumerate(classes):
        kept = dict.fromkeys(t for t in per_class[c] if seen[t] == 1)
        texts += list(kept)
        labels += [k] * len(kept)
    if spec["lfs"] == "examples":
        lf_configs = load_config(ROOT / "examples" / "fortunes" / "labelloop.yaml").weak.lfs
    else:
        lf_configs = [LFConfig(**d) for d in spec["lfs"]]
    return texts, np.array(labels), classes, lfs_from_config(lf_configs, classes)

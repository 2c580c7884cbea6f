"""Labeling function kinds, the decorator, versions, and LFs built from the config."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from labelloop.config import parse_config
from labelloop.exceptions import ConfigError, LabelingFunctionError
from labelloop.labeling.lf import (
    ABSTAIN,
    KeywordLF,
    ModelLF,
    RegexLF,
    heuristic_lf,
    labeling_function,
    lf_set_version,
    lfs_from_config,
)


def test_decorator_names_the_lf_and_passes_resources():
    @labeling_function(resources={"words": {"spam", "eggs"}})
    def menu(x, words):
        return 1 if set(x.split()) & words else ABSTAIN

    assert menu.name == "menu"
    assert menu("spam and ham") == 1 and menu("ham") == ABSTAIN
    assert menu.apply_batch(["eggs", "x"]).tolist() == [1, -1]


def test_decorator_without_parentheses_is_refused_with_the_fix():
    with pytest.raises(LabelingFunctionError, match=r"used without parentheses on 'f': write @labeling_function\(\)"):
        @labeling_function
        def f(x):
            return 0


def test_keyword_lf_matches_whole_words_case_insensitively():
    lf = KeywordLF("kw", ["bugs?", "unix"], label=0)
    assert lf("Found a BUG in UNIX") == 0
    assert lf("debugging unixes") == ABSTAIN  # word-bounded: no partial matches
    assert lf({"text": "bugs"}) == 0  # items may be records with a text field
    assert KeywordLF("kw2", ["Unix"], 0, ignore_case=False)("unix") == ABSTAIN


def test_regex_lf_and_its_errors():
    lf = RegexLF("re", r"\bm[ae]n\b.*\bwom[ae]n\b", label=3, field="body")
    assert lf({"body": "men are from mars, women from venus"}) == 3
    assert lf({"body": "women and children"}) == ABSTAIN
    with pytest.raises(LabelingFunctionError, match=r"labeling function 'bad': invalid regex '\(oops'"):
        RegexLF("bad", "(oops", 0)
    with pytest.raises(LabelingFunctionError, match=r"'big': label must be < 2, the number of classes \(got 5\)"):
        RegexLF("big", "x", 5, n_classes=2)


def test_heuristic_lf_by_import_path():
    lf = heuristic_lf("digits", "tests.labeling.lf_helpers:has_digit")
    assert lf.name == "digits" and lf.kind == "heuristic"
    assert lf("room 101") == 1 and lf("room") == ABSTAIN
    wrapped = heuristic_lf("long", "tests.labeling.lf_helpers:long_text")  # already a LabelingFunction
    assert wrapped.name == "long" and wrapped("x" * 30) == 0
    with pytest.raises(LabelingFunctionError, match=r"'h': cannot import module 'tests.labeling.nope'"):
        heuristic_lf("h", "tests.labeling.nope:f")
    with pytest.raises(LabelingFunctionError, match=r"'h': module 'tests.labeling.lf_helpers' has no attribute 'missing'"):
        heuristic_lf("h", "tests.labeling.lf_helpers:missing")
    with pytest.raises(LabelingFunctionError, match=r"'h': 'tests.labeling.lf_helpers:NOT_CALLABLE' is not callable"):
        heuristic_lf("h", "tests.labeling.lf_helpers:NOT_CALLABLE")


def test_model_lf_votes_when_confident():
    rng = np.random.default_rng(0)
    X = np.r_[rng.normal(-3, 1, (50, 2)), rng.normal(3, 1, (50, 2))]
    y = np.r_[np.zeros(50, int), np.ones(50, int) * 2]  # class ids 0 and 2
    lf = ModelLF("clf", LogisticRegression().fit(X, y), threshold=0.9)
    votes = lf.apply_batch(np.array([[-4.0, -4.0], [4.0, 4.0], [0.0, 0.0]]))
    assert votes.tolist() == [0, 2, -1]


def test_model_lf_parameter_mistakes_are_type_and_value_errors():
    # Parameter mistakes stay TypeError / ValueError (labelloop.exceptions); they are not labelloop errors.
    fitted = LogisticRegression().fit([[0.0], [1.0]], [0, 1])
    with pytest.raises(ValueError, match=r"'clf': threshold must be in \[0, 1\] \(got 1.5\)") as info:
        ModelLF("clf", fitted, threshold=1.5)
    assert not isinstance(info.value, LabelingFunctionError)
    with pytest.raises(TypeError, match=r"'clf': the estimator needs predict_proba \(got str\)"):
        ModelLF("clf", "not a model")


def test_lf_set_version_changes_with_any_lf():
    a = [KeywordLF("a", ["x"], 0), RegexLF("b", "y+", 1)]
    same = [KeywordLF("a", ["x"], 0), RegexLF("b", "y+", 1)]
    changed = [KeywordLF("a", ["x", "z"], 0), RegexLF("b", "y+", 1)]
    assert lf_set_version(a) == lf_set_version(same) != lf_set_version(changed)


BASE = {"dataset": {"name": "t", "modality": "text", "classes": ["ham", "spam"]}}


def weak(*lfs):
    return {**BASE, "weak": {"enabled": True, "lfs": list(lfs)}}


def test_lfs_from_config_build_every_kind():
    config = parse_config(weak(
        {"name": "kw", "kind": "keyword", "class": "spam", "keywords": ["win", "prizes?"]},
        {"name": "re", "kind": "regex", "class": "ham", "pattern": r"^dear\b"},
        {"name": "digits", "kind": "heuristic", "path": "tests.labeling.lf_helpers:has_digit"},
    ))
    lfs = lfs_from_config(config.weak.lfs, config.dataset.classes)
    assert [lf.kind for lf in lfs] == ["keyword", "regex", "heuristic"]
    assert [lf("Dear friend, win 2 prizes") for lf in lfs] == [1, 0, 1]


@pytest.mark.parametrize(
    "lf, match",
    [
        ({"name": "r1", "kind": "regex", "class": "spam", "pattern": "(ab"},
         r"t.yaml: weak.lfs\[0\]: LF 'r1': invalid regex '\(ab'"),
        ({"name": "k1", "kind": "keyword", "class": "eggs", "keywords": ["x"]},
         r"LF 'k1': unknown class 'eggs'; expected one of \['ham', 'spam'\]"),
        ({"name": "k2", "kind": "keyword", "class": "spam", "keywords": ["ok", "[z"]},
         r"weak.lfs\[0\]: LF 'k2': keyword '\[z' is not a valid regex"),
        ({"name": "k3", "kind": "keyword", "class": "spam"}, r"LF 'k3': kind 'keyword' needs 'keywords'"),
        ({"name": "h", "kind": "heuristic", "path": "nodots"}, r"LF 'h': path must look like 'package.module:function'"),
        ({"name": "x", "kind": "lookup", "class": "spam"}, r"weak.lfs\[0\].kind: must be one of"),
        ({"name": "r2", "kind": "regex", "class": "spam", "pattern": "a", "keywords": ["b"]},
         r"LF 'r2': 'keywords' does not apply to kind 'regex'"),
    ],
)
def test_malformed_lf_in_config_is_refused_naming_it(lf, match):
    with pytest.raises(ConfigError, match=match):
        parse_config(weak(lf), source="t.yaml")


def test_duplicate_lf_names_are_refused():
    lf = {"name": "same", "kind": "regex", "class": "spam", "pattern": "a"}
    with pytest.raises(ConfigError, match=r"t\.yaml: weak\.lfs: LF names must be distinct \(repeated: same\)"):
        parse_config(weak(lf, lf), source="t.yaml")

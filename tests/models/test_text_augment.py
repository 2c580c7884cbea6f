"""Text augmentation with the real Apertium and WordNet on a handful of fortunes: copies, cache, folds, config."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from labelloop.config import parse_config
from labelloop.exceptions import ConfigError, TrainingError
from labelloop.models.text_augment import (
    AugmentedRows,
    BackTranslation,
    SynonymReplacement,
    TextAugmenter,
    WordNet,
    augmented_folds,
    parse_text_pipeline,
)

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "examples" / "fortunes"))
from prepare import CLASSES, load_fortunes  # noqa: E402



@pytest.fixture(scope="module")
def fortunes() -> tuple[list[str], np.ndarray]:
    """Three short fortunes per class, from Debian's fortune files (real, offline text)."""
    texts, y = load_fortunes()
    picked = []
    for c in range(len(CLASSES)):
        short = [i for i in np.flatnonzero(y == c) if 40 < len(texts[i]) < 160]
        picked += short[:3]
    return [texts[i] for i in picked], y[picked]


# ------------------------------------------------------------------ back-translation
def test_back_translation_pairs_every_text_with_its_own_copy(fortunes):
    texts, _ = fortunes
    bt = BackTranslation(pivots=["spa", "cat"], batch_size=5)
    copies = {sig: bt.augment(texts, sig) for sig in bt.signatures()}
    assert bt.processes_ == 2 * 3  # 12 texts in batches of 5, per pivot: one process pair per batch
    for sig, out in copies.items():
        assert len(out) == len(texts)
        changed = sum(c[0] != " ".join(t.split()) for t, c in zip(texts, out))
        assert changed >= len(texts) // 2, sig  # a round trip rewrites most sentences
        # Each copy is a paraphrase of *its own* text: closer to it in words than to any other text of the batch.
        for i, (c,) in enumerate(out):
            assert "\n" not in c
            assert int(np.argmax([_overlap(c, t) for t in texts])) == i, (texts[i], c)


def _overlap(a: str, b: str) -> float:
    wa, wb = set(a.lower().split()), set(b.lower().split())
    return len(wa & wb) / len(wa | wb)


def test_a_multi_line_text_stays_one_copy():
    bt = BackTranslation(pivots=["spa"])
    out = bt.augment(["Computers are useless.\nThey can only give you answers.\n\t-- Pablo Picasso", "The end."],
                     "BackTranslation:eng-spa-eng")
    assert len(out) == 2 and "Picasso" in out[0][0] and "end" in out[1][0].lower()


def test_missing_apertium_names_the_package(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # a PATH where no apertium lives
    with pytest.raises(TrainingError, match=r"needs Apertium.*apt-get install apertium-eng-spa"):
        BackTranslation().check()


def test_a_pivot_without_its_modes_names_the_package():
    with pytest.raises(TrainingError, match=r"via 'deu' needs Apertium's eng-deu and deu-eng modes: apt-get install apertium-eng-deu"):
        BackTranslation(pivots=["deu"]).check()


# ------------------------------------------------------------------ WordNet synonyms
def test_wordnet_reads_debians_dictionary():
    wn = WordNet.shared()
    assert "computing machine" in wn.synonyms("computer")
    assert "passion" in wn.synonyms("love")  # its first sense has no other lemma: the next one is used
    assert wn.synonyms("qwertyuiop") == []


def test_missing_wordnet_names_the_package(tmp_path):
    with pytest.raises(TrainingError, match=rf"WordNet's dictionary files in {tmp_path}.*apt-get install wordnet"):
        WordNet(tmp_path)


def test_synonym_replacement_is_seeded_by_the_text_and_keeps_names_and_case():
    text = "Marriage is a great institution, said Washington. Computers are useless."
    sr = SynonymReplacement(p=0.5, copies=3)
    first = sr.replace(text)
    assert first == SynonymReplacement(p=0.5, copies=3).replace(text)  # same text, same copies
    assert 1 <= len(first) <= 3 and all(c != text for c in first)
    for copy in first:
        assert "Washington" in copy  # a capital inside a sentence is a name: left alone
        assert copy.split()[0][0].isupper()  # a replaced first word keeps its capital
        assert " is a " in copy  # stop words are never replaced
    assert SynonymReplacement(p=0.5).replace("the of and") == []  # nothing replaceable: no copy


# ------------------------------------------------------------------ cache, batches, folds
def test_copies_are_cached_by_content_hash(fortunes, tmp_path, monkeypatch):
    texts, _ = fortunes
    entries = [{"BackTranslation": {"pivots": ["spa"], "batch_size": 4}}, {"SynonymReplacement": {"copies": 2}}]
    aug = TextAugmenter(entries, cache_dir=tmp_path)
    batch = texts + texts[:2]
    flat, origin, weight = aug.augment(batch)  # repeated texts are computed once
    assert aug.computed_ == 2 * len(texts) and aug.cached_ == 0
    assert len(flat) == len(origin) == len(weight) and set(origin) <= set(range(len(batch)))
    assert all(f != " ".join(batch[o].split()) for f, o in zip(flat, origin))
    assert set(origin) >= {len(texts), len(texts) + 1}  # the repeats get their copies too
    assert len(list(tmp_path.rglob("*.json"))) == 2 * len(texts)

    # A second pass reads every copy back: no translation, so it runs even without Apertium.
    monkeypatch.setenv("PATH", "/nonexistent")
    again = TextAugmenter(entries, cache_dir=tmp_path)
    assert again.augment(batch)[0] == flat
    assert again.computed_ == 0 and again.cached_ == 2 * len(texts)

    # A torn cache file is recomputed, not trusted.
    monkeypatch.undo()
    victim = sorted(tmp_path.rglob("*.json"))[0]
    victim.write_text('["half')
    third = TextAugmenter(entries, cache_dir=tmp_path)
    third.augment(texts)
    assert third.computed_ == 1 and isinstance(json.loads(victim.read_text()), list)


def test_copies_train_only_in_their_originals_folds():
    from labelloop.models.ensemble import KFoldCommittee

    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 5)).astype(np.float32)
    y = np.repeat([0, 1, 2], 10)
    Y, w = np.eye(3, dtype=np.float32)[y], np.ones(30, np.float32)
    rows = AugmentedRows(X[[0, 0, 7, 29]] + 0.01, np.array([0, 0, 7, 29]), np.array([1.0, 1.0, 0.5, 1.0], np.float32))
    folds = KFoldCommittee(model="mlp", n_splits=3).fold_plan(y)
    X2, Y2, w2, tr = augmented_folds(X, Y, w, [t for t, _ in folds], rows)
    assert X2.shape == (34, 5) and (Y2[30:].argmax(1) == y[[0, 0, 7, 29]]).all()
    np.testing.assert_allclose(w2[30:], [1.0, 1.0, 0.5, 1.0])
    for (train, val), t2 in zip(folds, tr):
        extra = t2[len(train):] - 30
        assert set(rows.origin[extra]) == set(rows.origin) & set(train)  # exactly the copies of its own rows
        assert not set(rows.origin[extra]) & set(val)  # no copy of a validation item ever trains
    with pytest.raises(TrainingError, match="outside the 30 training items"):
        augmented_folds(X, Y, w, [t for t, _ in folds], AugmentedRows(X[:1], np.array([30]), np.ones(1)))


# ------------------------------------------------------------------ config
TEXT = {"dataset": {"name": "fortunes", "modality": "text", "classes": CLASSES}}


def test_text_transforms_in_the_config():
    t = parse_config({**TEXT, "training": {"model": "mlp", "augment": [
        {"BackTranslation": {"pivots": ["spa", "cat"]}}, {"SynonymReplacement": {"p": 0.2, "copies": 2}}]}}).training
    assert t.text_augment == t.augment and len(parse_text_pipeline(t.augment)) == 2
    assert parse_config({**TEXT, "training": {"model": "mlp"}}).training.text_augment == []


@pytest.mark.parametrize(
    "data,message",
    [
        ({**TEXT, "training": {"model": "mlp", "augment": [{"SynonymReplacement": {"p": 1.5}}]}},
         r"labelloop.yaml: training.augment: augment\[0\]: SynonymReplacement: bad parameter 'p': .*less than or equal to 1 \(got 1.5\)"),
        ({**TEXT, "training": {"model": "mlp", "augment": [{"SynonymReplacement": {"copiez": 2}}]}},
         r"augment\[0\]: SynonymReplacement: bad parameter 'copiez': unknown parameter"),
        ({**TEXT, "training": {"model": "mlp", "augment": [{"BackTranslation": {"pivots": ["spa", "Spanish"]}}]}},
         r"augment\[0\]: BackTranslation: pivots must be distinct Apertium language codes.*'Spanish'"),
        ({**TEXT, "training": {"model": "mlp", "augment": [{"BackTranslation": {}}, {"GaussNoise": {}}]}},
         r"text transforms .* and image transforms cannot be mixed"),
        ({**TEXT, "training": {"model": "cnn", "augment": [{"BackTranslation": {}}]}},
         r"training: text augmentation applies to model 'mlp' \(MiniLM embeddings\) only \(got model 'cnn'\)"),
        ({**TEXT, "training": {"model": "mlp", "tta": 2, "augment": [{"BackTranslation": {}}]}},
         r"training: tta: 2 applies to image augmentation only"),
        ({"dataset": {"name": "d", "modality": "tabular", "classes": ["a", "b"]},
          "training": {"model": "mlp", "augment": [{"SynonymReplacement": {}}]}},
         r"training.augment: text transforms need a text dataset \(dataset.modality is 'tabular'\)"),
    ],
)
def test_bad_text_augment_configs_are_refused(data, message):
    with pytest.raises(ConfigError, match=message):
        parse_config(data, source="labelloop.yaml")


# ------------------------------------------------------------------ the training stage, end to end
@pytest.mark.slow
@pytest.mark.usefixtures("prefect_harness")
def test_training_flow_trains_on_augmented_copies_and_reuses_the_cache(fortunes, tmp_path, monkeypatch):
    from labelloop.config import load_config
    from labelloop.flows.importing import import_flow
    from labelloop.flows.training import training_flow

    texts, y = fortunes
    folder = tmp_path / "fortunes"
    folder.mkdir()
    with open(folder / "fortunes.jsonl", "w", encoding="utf-8") as fh:
        for i, (t, c) in enumerate(zip(texts, y)):
            fh.write(json.dumps({"id": f"f{i}", "text": t, "label": CLASSES[c]}) + "\n")
    training = {
        "model": "mlp", "folds": 3, "epochs": 3, "min_steps": 0, "patience": None, "device": "cpu", "seed": 0,
        "augment": [{"BackTranslation": {"pivots": ["spa", "cat"]}}, {"SynonymReplacement": {"p": 0.2}}],
    }
    config = {
        "dataset": {"name": "fortunes", "modality": "text", "classes": CLASSES},
        "data_dir": "data",
        "sources": [{"kind": "text_file", "name": "f", "path": "fortunes.jsonl", "text_field": "text",
                     "label_field": "label", "id_field": "id"}],
        "training": training,
    }
    path = folder / "labelloop.yaml"
    path.write_text(yaml.safe_dump(config))
    import_flow(str(path), "run-import")
    result = training_flow(str(path), "run-1")
    assert result["trained_on"] == len(texts)
    # Up to two back-translations and one synonym copy per text, minus copies identical to their original.
    assert len(texts) <= result["augmented_copies"] <= 3 * len(texts)
    cache = load_config(path).data_path / "cache"
    assert len(list((cache / "text-augment").rglob("*.json"))) == 3 * len(texts)
    minilm_files = len(list((cache / "minilm").rglob("*.npy")))
    assert minilm_files == len(texts) + result["augmented_copies"]  # copies went through the same embedder

    # A new model version (another seed) augments again, from the cache: no Apertium needed.
    training["seed"] = 1
    path.write_text(yaml.safe_dump({**config, "training": training}))
    monkeypatch.setenv("PATH", os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep)
                                              if not (Path(p) / "apertium").exists()))
    second = training_flow(str(path), "run-2")
    assert second["version"] != result["version"] and not second["resumed"]
    assert second["augmented_copies"] == result["augmented_copies"]
    assert len(list((cache / "minilm").rglob("*.npy"))) == minilm_files

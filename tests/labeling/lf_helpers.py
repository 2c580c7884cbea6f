"""Module-level LFs for tests that need import paths and pickling (worker processes)."""

from labelloop.labeling.lf import ABSTAIN, labeling_function


def has_digit(x):
    text = x["text"] if isinstance(x, dict) else x
    return 1 if any(c.isdigit() for c in text) else ABSTAIN


@labeling_function()
def long_text(x):
    text = x["text"] if isinstance(x, dict) else x
    return 0 if len(text) > 20 else ABSTAIN


def explode_on_boom(x):
    text = x["text"] if isinstance(x, dict) else x
    if "boom" in text:
        raise RuntimeError("boom found")
    return 0 if "ok" in text else ABSTAIN


NOT_CALLABLE = 3

"""The label source kinds and the default precedence: defined here, once.

Every label row carries one of :data:`LABEL_KINDS`. All but ``annotator`` (one
person's raw crowd vote, which only the crowd aggregate turns into a ``crowd``
row) can take part in training-label resolution; the config's
``resolution.precedence`` picks and orders them, strongest first, and
:data:`DEFAULT_PRECEDENCE` is the order used when it says nothing.

>>> DEFAULT_PRECEDENCE[0], DEFAULT_PRECEDENCE[-1]
('gold', 'model')
>>> set(LABEL_KINDS) - set(SOURCE_KINDS)
{'annotator'}
"""

from __future__ import annotations

__all__ = ["LABEL_KINDS", "SOURCE_KINDS", "DEFAULT_PRECEDENCE"]

#: Kinds of opinion a label row may hold, strongest first; ``annotator`` rows are raw crowd votes.
LABEL_KINDS: tuple[str, ...] = ("gold", "expert", "crowd", "weak", "pseudo", "model", "annotator")

#: Kinds training-label resolution can rank (``resolution.precedence`` is a list of these).
SOURCE_KINDS: tuple[str, ...] = LABEL_KINDS[:-1]

#: gold > expert > crowd aggregate > weak > pseudo > model (``model`` rows are reported, never trained on).
DEFAULT_PRECEDENCE: tuple[str, ...] = SOURCE_KINDS

"""Opening the config and the store at the start of a stage: :func:`labelloop.runtime.open_stage`.

Re-exported for the flows that still import it from here; new code imports it
from :mod:`labelloop.runtime` (tasks must: tasks never import flows).
"""

from labelloop.runtime import open_stage

__all__ = ["open_stage"]

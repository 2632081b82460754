"""The garbage collector, set for a process that runs workflows.

The workflow sandbox gives every workflow run its own copy of the workflow modules: their
classes and functions refer to each other, so each finished run leaves cyclic garbage that
only the collector frees, and it runs often. Each full collection walks every object the
process holds, and most of those were imported at start (the SDK, SQLAlchemy, pydantic's
schemas) and live as long as the process. ``settle`` moves them out of the collector's
sight (``gc.freeze``) once the worker's code is imported, and lets more objects be allocated
between young collections, so the collector's time goes to the garbage the runs leave.
"""

from __future__ import annotations

import gc

# Allocations (less deallocations) between young collections: CPython's default is 700.
# A workflow run's sandbox allocates tens of thousands of objects; at 700 most collections
# would find the run still alive and promote it, making the older generations work harder.
YOUNG_THRESHOLD = 10_000


def settle() -> None:
    """Call once the process has imported what it keeps (the SDK, the workflows, the
    activities and their database layer): collect what the start left behind, freeze the
    rest, raise the threshold."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)

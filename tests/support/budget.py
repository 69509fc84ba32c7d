"""How hard the property tests search: a few hundred examples in the everyday suite,
the deep numbers with ``HITL_SLOW=1`` (run before a release, or when a property fails)."""

from __future__ import annotations

import os

DEEP = os.environ.get("HITL_SLOW") == "1"


def examples(deep: int, *, quick: int) -> int:
    """Hypothesis ``max_examples``: ``deep`` with HITL_SLOW=1, else ``quick``."""
    return deep if DEEP else min(quick, deep)

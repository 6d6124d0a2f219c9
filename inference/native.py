"""The compiled loops (``inference/_native.c``) when built, else ``None``.

``python -m inference.native_build`` (run by ``make install`` and the Dockerfile) builds them.
Callers keep a pure-Python path that gives the same results, so a machine without a C compiler
is slower, never wrong; ``/readyz`` and ``make bench`` say which path runs.
"""

from __future__ import annotations

import logging
from types import ModuleType

ABI = 5
"""The version of ``inference/_native.c`` this Python code calls (its ``ABI`` constant)."""

compiled: ModuleType | None
try:
    from inference import _native as compiled
except ImportError:  # pragma: no cover - exercised on machines without a C compiler
    compiled = None
else:
    if getattr(compiled, "ABI", None) != ABI:  # pragma: no cover - a build older than the code
        logging.getLogger(__name__).warning(
            "inference/_native is a stale build (ABI %s, expected %s): using the Python paths; "
            "rebuild with `python -m inference.native_build`",
            getattr(compiled, "ABI", None),
            ABI,
        )
        compiled = None

"""The compiled loops (``inference/_native.c``) when built, else ``None``.

``python -m inference.native_build`` (run by ``make install`` and the Dockerfile) builds them.
Callers keep a pure-Python path that gives the same results, so a machine without a C compiler
is slower, never wrong; ``/readyz`` and ``make bench`` say which path runs.
"""

from __future__ import annotations

from types import ModuleType

compiled: ModuleType | None
try:
    from inference import _native as compiled
except ImportError:  # pragma: no cover - exercised on machines without a C compiler
    compiled = None

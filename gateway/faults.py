"""A test-only fault hook: the process dies at a named step, as in a crash or a kill -9.

The crash tests (tests/crash/) run a real gateway with ``GATEWAY_CRASH_AT=<step>``, let it
die there, and check that ``gateway worker --once`` leaves everything consistent. The steps
are the places where a crash leaves something half-done: a points movement, a POS write
recorded but not sent, sent but not answered, a redemption's change of state. Settings
refuse the hook in production; unset, ``crash_point`` is one comparison.
"""

from __future__ import annotations

import os
import sys

_armed: str | None = None


def arm(step: str | None) -> None:
    global _armed
    _armed = step or None


def crash_point(step: str) -> None:
    """Die here when this step (or its prefix before ':') is the one armed."""
    if _armed is not None and (_armed == step or _armed == step.split(":", 1)[0]):
        sys.stderr.write(f"crash hook: dying at {step}\n")
        sys.stderr.flush()
        os._exit(86)

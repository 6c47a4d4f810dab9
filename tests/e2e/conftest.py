"""End to end: the gateway as its users run it (processes, the demo, the Procfile, a real
browser). Every test that starts a ``gateway`` process is marked ``slow``: `uv run pytest -m
"not slow"` is the quick loop; CI runs them all."""

from __future__ import annotations

from pathlib import Path

import pytest

PROCESSES = Path(__file__).parent / "processes"
SLOW_MODULES = {Path(__file__).parent / "test_demo.py"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        path = item.path
        if PROCESSES in path.parents or path in SLOW_MODULES:
            item.add_marker(pytest.mark.slow)

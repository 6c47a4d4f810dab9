"""The code's own checks, run by the test command so that CI (which runs only that) keeps
main clean: mypy --strict over the gateway, its tests and the benchmark, and ruff's lint
and format."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from mypy import api as mypy

ROOT = Path(__file__).resolve().parents[1]


def test_mypy_strict_finds_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Files and strictness come from pyproject.toml ([tool.mypy]), relative to the root."""
    monkeypatch.chdir(ROOT)
    report, errors, status = mypy.run(["--config-file", str(ROOT / "pyproject.toml")])
    assert status == 0, report + errors


def test_ruff_lint_and_format_find_nothing() -> None:
    for check in (["check", "--quiet"], ["format", "--check", "--quiet"]):
        done = subprocess.run(
            [sys.executable, "-m", "ruff", *check, str(ROOT)],
            capture_output=True, text=True, cwd=ROOT, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr

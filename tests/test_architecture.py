"""The import rules of docs/architecture.md ("Packages"), as import-linter contracts in
pyproject.toml: checked here so that CI (which runs only the test command) enforces them."""

from __future__ import annotations

import pkgutil
import tomllib
from pathlib import Path
from typing import Any

import pytest
from importlinter.cli import lint_imports

import gateway

ROOT = Path(__file__).resolve().parents[1]


def contracts() -> list[dict[str, Any]]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    found: list[dict[str, Any]] = config["tool"]["importlinter"]["contracts"]
    return found


def test_the_import_contracts_are_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    assert lint_imports(no_cache=True, no_logo=True) == 0


@pytest.mark.parametrize("source", ["gateway.domain", "gateway.sandbox"])
def test_the_closed_packages_forbid_every_other_part_of_the_gateway(source: str) -> None:
    """A module added to the gateway later is forbidden to domain and sandbox too."""
    everything = {f"gateway.{m.name}" for m in pkgutil.iter_modules(gateway.__path__)}
    [contract] = [c for c in contracts() if c["source_modules"] == [source]]
    assert set(contract["forbidden_modules"]) == everything - {source}

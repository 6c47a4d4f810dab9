"""docs/operations.md, "Settings", lists every setting the gateway reads, with its default
and meaning: a setting added to ``gateway/settings.py`` without a row there fails here, and
so does a row for a setting that no longer exists."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from gateway.settings import Settings

DOC = Path(__file__).resolve().parents[1] / "docs" / "operations.md"
ROW_VARIABLE = re.compile(r"^\| `(GATEWAY_[A-Z0-9_]+)` \|")


def env_var(field: str) -> str:
    prefix = Settings.model_config.get("env_prefix") or ""
    return f"{prefix}{field}".upper()


def documented() -> dict[str, list[str]]:
    """Each row of the "Settings" section by its variable: [default, meaning]."""
    text = DOC.read_text(encoding="utf-8")
    section = text.split("\n## Settings\n", 1)[1].split("\n## ", 1)[0]
    rows: dict[str, list[str]] = {}
    for line in section.splitlines():
        if match := ROW_VARIABLE.match(line):
            cells = [cell.strip() for cell in line.strip().strip("|").split(" | ")]
            assert len(cells) == 3, f"variable | default | meaning: {line[:80]}"
            assert match.group(1) not in rows, f"{match.group(1)} is listed twice"
            rows[match.group(1)] = cells[1:]
    return rows


@pytest.mark.parametrize("field", sorted(Settings.model_fields))
def test_every_setting_has_a_row_with_its_default_and_meaning(field: str) -> None:
    rows = documented()
    assert env_var(field) in rows, f"docs/operations.md, Settings: add a row for {env_var(field)}"
    default, meaning = rows[env_var(field)]
    assert default and meaning, f"{env_var(field)}: say its default and what it means"


def test_every_row_is_a_setting_and_states_the_default_the_code_has() -> None:
    variables = {env_var(field): field for field in Settings.model_fields}
    rows = documented()
    assert set(rows) <= set(variables), f"no such setting: {set(rows) - set(variables)}"
    for variable, (default, _) in rows.items():
        value = Settings.model_fields[variables[variable]].default
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            shown = str(value.value if hasattr(value, "value") else value)
            assert f"`{shown}`" in default, f"{variable}: the code's default is {shown!r}"

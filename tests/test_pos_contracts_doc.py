"""docs/pos-contracts.md names, for each POS behaviour the gateway relies on, the one place
in the code that decides it (and the sandbox's that mirrors it). Those places must exist:
when one moves or is renamed, this fails until the list is corrected."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "pos-contracts.md"
TICKED = re.compile(r"`([^`]+)`")
PATH = re.compile(r"^[\w./-]+\.(py|json)$")
SEARCHED = ("gateway",)


def rows() -> list[tuple[str, str]]:
    """(behaviour, where) of every table row."""
    found = []
    for line in DOC.read_text(encoding="utf-8").splitlines():
        if not line.startswith("| ") or line.startswith(("| behaviour", "|---")):
            continue
        cells = [cell.strip() for cell in line.strip().strip("|").split(" | ")]
        assert len(cells) == 3, f"a row of three cells: {line[:80]}"
        found.append((cells[0], cells[2]))
    return found


def resolve(path: str) -> Path | None:
    for base in (ROOT / "gateway", ROOT):
        if (base / path).is_file():
            return base / path
    return None


def defined(text: str, name: str) -> bool:
    """``name`` (or each part of a dotted ``Class.member``) is written in ``text`` as a
    word: a definition, a key, a literal the code relies on."""
    parts = name.split(".")
    if all(part.isidentifier() for part in parts):
        return all(re.search(rf"\b{re.escape(part)}\b", text) for part in parts)
    return name in text


def everywhere() -> str:
    return "\n".join(
        file.read_text(encoding="utf-8")
        for folder in SEARCHED
        for file in (ROOT / folder).rglob("*.py")
    )


def test_the_list_has_rows_and_each_says_where() -> None:
    assert len(rows()) >= 30
    for behaviour, where in rows():
        assert where, f"no place named for: {behaviour[:80]}"
        assert TICKED.search(where), f"no place named for: {behaviour[:80]}"


@pytest.mark.parametrize(("behaviour", "where"), rows(), ids=lambda value: value[:40])
def test_every_place_the_list_names_exists(behaviour: str, where: str) -> None:
    current: str | None = None
    all_code = None
    for token in TICKED.findall(where):
        if PATH.match(token):
            found = resolve(token)
            assert found is not None, f"{token} does not exist (for: {behaviour[:60]})"
            current = found.read_text(encoding="utf-8")
            continue
        if current is None:
            all_code = all_code or everywhere()
            assert token in all_code, f"{token} is nowhere in the code (for: {behaviour[:60]})"
            continue
        assert defined(current, token), f"{token} is not where the list says ({behaviour[:60]})"

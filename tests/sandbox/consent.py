"""A browser's part of OAuth, for tests: read a consent page's form, submit it, read where the
POS sends the browser back. Only what the page's HTML says is used, as a browser would."""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import parse_qs, urlsplit

import httpx

# The app the sandboxes know by default: the gateway's development defaults.
APP_ID = "gateway-sandbox"
APP_SECRET = "gateway-sandbox-secret"
APP = {"client_id": APP_ID, "client_secret": APP_SECRET}
CALLBACK = "https://gw.example/oauth/callback"


@dataclass
class ConsentForm:
    """The page's one form: where it goes, its hidden fields, its buttons, its text."""

    method: str = ""
    action: str = ""
    hidden: dict[str, str] = field(default_factory=dict)
    buttons: list[tuple[str, str]] = field(default_factory=list)
    text: str = ""
    forms: int = 0

    def submission(self, decision: str) -> dict[str, str]:
        return {**self.hidden, "decision": decision}


class _Reader(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.form = ConsentForm()
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        named = {key: value or "" for key, value in attrs}
        if tag == "form":
            self.form.forms += 1
            self.form.method, self.form.action = named.get("method", ""), named.get("action", "")
        elif tag == "input" and named.get("type") == "hidden":
            self.form.hidden[named["name"]] = named.get("value", "")
        elif tag == "button":
            self.form.buttons.append((named.get("name", ""), named.get("value", "")))

    def handle_data(self, data: str) -> None:
        self._text.append(data)


def read_form(page: str) -> ConsentForm:
    reader = _Reader()
    reader.feed(page)
    reader.form.text = " ".join(" ".join(reader._text).split())
    return reader.form


def redirect_params(response: httpx.Response) -> dict[str, str]:
    """The query of a redirect's Location, each parameter once."""
    assert response.status_code == 303, response.text
    query = parse_qs(urlsplit(response.headers["location"]).query, keep_blank_values=True)
    assert all(len(values) == 1 for values in query.values()), query
    return {key: values[0] for key, values in query.items()}


def consent_query(**params: str) -> dict[str, str]:
    """What an app puts in the authorize URL, defaults for ours; ``None``-free."""
    defaults = {
        "response_type": "code",
        "client_id": APP_ID,
        "redirect_uri": CALLBACK,
        "state": "st-42",
    }
    return {**defaults, **params}

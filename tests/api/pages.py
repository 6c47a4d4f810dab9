"""A browser's part of the connect page, for tests: read what a page shows (its text, links
and forms), click a link, submit a form, follow each redirect by hand. Only what the HTML
says is used, as a browser would; every page the gateway serves is checked for what any
page of it must be (no script, a viewport, never cached, never framed)."""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx

from gateway.settings import Settings
from tests.sandbox.consent import read_form
from tests.support import SandboxHandle


def pointed_at_sandboxes(
    settings: Settings, public_url: str, xseries: SandboxHandle, kounta: SandboxHandle
) -> Settings:
    """The gateway at ``public_url``, its four POS URLs at the sandboxes (an X-Series API
    URL without ``{domain_prefix}`` is used as it is)."""
    return settings.model_copy(
        update={
            "public_url": public_url,
            "xseries_connect_url": f"{xseries.url}/connect",
            "xseries_api_url": xseries.url,
            "kounta_authorize_url": f"{kounta.url}/authorize",
            "kounta_api_url": kounta.url,
        }
    )


@dataclass
class Form:
    method: str
    action: str
    hidden: dict[str, str] = field(default_factory=dict)
    buttons: list[str] = field(default_factory=list)  # their text
    radios: list[tuple[str, str, str]] = field(default_factory=list)  # name, value, label


@dataclass
class Page:
    url: str
    status: int
    html: str
    text: str = ""
    title: str = ""
    links: list[tuple[str, str]] = field(default_factory=list)  # text, href
    forms: list[Form] = field(default_factory=list)
    codes: dict[str, str] = field(default_factory=dict)  # <code id=...> text
    sections: dict[str, str] = field(default_factory=dict)  # <section id=...> text

    def link(self, text: str) -> str:
        found = [href for label, href in self.links if label == text]
        assert len(found) == 1, f"no single link {text!r} in {self.links}"
        return urljoin(self.url, found[0])

    def has_link(self, text: str) -> bool:
        return any(label == text for label, _ in self.links)

    def form(self, button: str) -> Form:
        found = [form for form in self.forms if button in form.buttons]
        assert len(found) == 1, f"no single form with a {button!r} button: {self.forms}"
        return found[0]

    def has_form(self, button: str) -> bool:
        return any(button in form.buttons for form in self.forms)


class _Reader(HTMLParser):
    def __init__(self, page: Page) -> None:
        super().__init__()
        self.page = page
        self.text: list[str] = []
        self.open: list[str] = []  # tags whose text is being collected: a, button, label...
        self.pieces: dict[str, list[str]] = {}
        self.href = ""
        self.radio: tuple[str, str] | None = None
        self.code_id = ""
        self.section: tuple[str, list[str]] | None = None
        self.in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        named = {key: value or "" for key, value in attrs}
        self.in_style = tag == "style"
        if tag == "form":
            self.page.forms.append(Form(named.get("method", "get"), named.get("action", "")))
        elif tag == "input" and named.get("type") == "hidden":
            self.page.forms[-1].hidden[named["name"]] = named.get("value", "")
        elif tag == "input" and named.get("type") == "radio":
            self.radio = (named["name"], named.get("value", ""))
        elif tag == "a":
            self.href = named.get("href", "")
        elif tag == "code" and named.get("id"):
            self.code_id = named["id"]
        elif tag == "section" and named.get("id"):
            self.section = (named["id"], [])
        if tag in ("a", "button", "label", "title", "code"):
            self.open.append(tag)
            self.pieces[tag] = []

    def handle_endtag(self, tag: str) -> None:
        self.in_style = False
        if tag == "section" and self.section:
            name, pieces = self.section
            self.page.sections[name] = " ".join(" ".join(pieces).split())
            self.section = None
        if not self.open or self.open[-1] != tag:
            return
        self.open.pop()
        words = " ".join(" ".join(self.pieces.pop(tag)).split())
        if tag == "a":
            self.page.links.append((words, self.href))
        elif tag == "button":
            self.page.forms[-1].buttons.append(words)
        elif tag == "label" and self.radio:
            self.page.forms[-1].radios.append((*self.radio, words))
            self.radio = None
        elif tag == "title":
            self.page.title = words
        elif tag == "code" and self.code_id:
            self.page.codes[self.code_id] = words
            self.code_id = ""

    def handle_data(self, data: str) -> None:
        """Text the page shows: not its stylesheet, not its title (kept apart)."""
        if self.in_style:
            return
        for tag in self.open:
            self.pieces[tag].append(data)
        if "title" in self.open:
            return
        self.text.append(data)
        if self.section:
            self.section[1].append(data)


def read_page(response: httpx.Response) -> Page:
    page = Page(str(response.url), response.status_code, response.text)
    reader = _Reader(page)
    reader.feed(response.text)
    page.text = " ".join(" ".join(reader.text).split())
    return page


def check_page(response: httpx.Response) -> None:
    """What every page of the connect flow must be, whatever it says."""
    html = response.text
    assert response.headers["content-type"].startswith("text/html"), response.headers
    assert "<script" not in html.lower()
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in html
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    assert "Traceback" not in html


class Browser:
    """Goes where a browser would, one request at a time, redirects followed by hand."""

    def __init__(self, client: httpx.AsyncClient, gateway: str) -> None:
        self.client = client
        self.gateway = gateway
        self.seen: list[httpx.Response] = []

    async def _answer(self, response: httpx.Response) -> httpx.Response:
        self.seen.append(response)
        if str(response.url).startswith(self.gateway) and not response.is_redirect:
            check_page(response)
        if response.is_redirect:
            assert response.status_code == 303, response.status_code
        return response

    async def get(self, url: str) -> httpx.Response:
        return await self._answer(await self.client.get(url))

    async def open(self, url: str) -> Page:
        return read_page(await self.get(url))

    async def follow(self, response: httpx.Response) -> httpx.Response:
        assert response.status_code == 303, (response.status_code, response.text)
        return await self.get(urljoin(str(response.url), response.headers["location"]))

    async def submit(self, page: Page, button: str, **fields: str) -> httpx.Response:
        form = page.form(button)
        assert form.method.lower() == "post"
        data = {**form.hidden, **fields}
        return await self._answer(await self.client.post(urljoin(page.url, form.action),
                                                         data=data))  # fmt: skip


@dataclass
class Consent:
    """One trip to a POS's consent page and back."""

    start: httpx.Response  # the gateway's 303 to the consent page
    consent: httpx.Response  # the POS's page
    callback_url: str  # where the POS sent the browser back
    callback: httpx.Response  # the gateway's answer there

    @property
    def consent_query(self) -> dict[str, str]:
        query = parse_qs(urlsplit(self.start.headers["location"]).query)
        return {key: values[0] for key, values in query.items()}

    @property
    def callback_query(self) -> dict[str, str]:
        query = parse_qs(urlsplit(self.callback_url).query)
        return {key: values[0] for key, values in query.items()}


async def consent(browser: Browser, page: Page, button: str, decision: str = "approve") -> Consent:
    """Click ``button``, ``decision`` on the POS's page, back to the gateway's callback."""
    start = await browser.get(page.link(button))
    shown = await browser.follow(start)
    assert shown.status_code == 200, shown.text
    form = read_form(shown.text)
    decided = await browser.client.post(
        urljoin(str(shown.url), form.action), data=form.submission(decision)
    )
    assert decided.status_code == 303, decided.text
    back = decided.headers["location"]
    return Consent(start, shown, back, await browser.get(back))

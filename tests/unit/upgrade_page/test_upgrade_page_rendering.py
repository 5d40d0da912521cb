"""The page's HTML: semantic, accessible, no script, every value escaped, the form posting exactly its fields."""

from __future__ import annotations

import base64
import hashlib
import re
from datetime import UTC, datetime
from html.parser import HTMLParser

import pytest
from billops.upgrade_page.page_rendering import (
    CONTENT_SECURITY_POLICY,
    STYLE,
    OfferPage,
    render_message_page,
    render_offer_page,
    security_headers,
)
from billops.upgrade_page.upgrade_offers import PlanSummary

EVIL = '"><script>alert(1)</script><img src=x onerror=alert(2)>&'
UNTIL = datetime(2026, 3, 4, 12, 5, tzinfo=UTC)


class Page(HTMLParser):
    """Collects what the checks look at: elements, attributes, text, forms' inputs."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_startendtag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)

    def all(self, tag: str) -> list[dict[str, str | None]]:
        return [attrs for name, attrs in self.tags if name == tag]

    @property
    def plain_text(self) -> str:
        return " ".join(" ".join(self.text).split())


def offer_page(**overrides) -> OfferPage:
    values = {
        "current": PlanSummary("Subscription ending in 0017", "$9.95 every 30 days", note="Renews on 2026-02-01."),
        "offer": PlanSummary("Gold membership", "$19.95 every 30 days", description="HD videos & extras"),
        "action_url": "https://bill.ccbill.com/jpost/upgradeSubscription.cgi",
        "form_fields": {"clientAccnum": "900100", "clientSubacc": "0000", "enc": "uyAmO7ic+/n0ban=="},
        "valid_until": UNTIL,
    }
    values.update(overrides)
    return OfferPage(**values)


def test_the_offer_page_is_semantic_and_accessible():
    html = render_offer_page(offer_page())
    page = Page(html)
    assert html.startswith("<!doctype html>")
    assert page.all("html") == [{"lang": "en"}]
    assert len(page.all("h1")) == 1 and len(page.all("main")) == 1
    assert [attrs.get("id") for attrs in page.all("h2")] == ["current-plan", "offer"]
    assert {"name": "viewport", "content": "width=device-width, initial-scale=1"} in page.all("meta")
    assert page.all("title")
    (checkbox,) = [a for a in page.all("input") if a.get("type") == "checkbox"]
    assert "required" in checkbox and "name" not in checkbox  # consent is checked natively, never posted
    assert page.all("label") == [{"for": checkbox["id"]}]
    (button,) = page.all("button")
    # Named as in the guide's example form: <input type="submit" name="submit" value="Upgrade Subscription">.
    assert button == {"type": "submit", "name": "submit", "value": "Upgrade Subscription"}
    text = page.plain_text
    for expected in ("Your current plan", "Subscription ending in 0017", "$9.95 every 30 days", "Renews on 2026-02-01",
                     "Upgrade to Gold membership", "$19.95 every 30 days", "HD videos & extras",
                     "4 March 2026, 12:05 UTC"):
        assert expected in text, expected
    assert {"datetime": "2026-03-04T12:05:00Z"} in page.all("time")


def test_the_form_posts_exactly_the_fields_to_ccbill_and_nothing_else():
    page = Page(render_offer_page(offer_page()))
    (form,) = page.all("form")
    assert form["method"] == "post"
    assert form["action"] == "https://bill.ccbill.com/jpost/upgradeSubscription.cgi"
    posted = {a["name"]: a["value"] for a in page.all("input") if a.get("name")}
    assert posted == {"clientAccnum": "900100", "clientSubacc": "0000", "enc": "uyAmO7ic+/n0ban=="}
    assert all(a["type"] in ("hidden", "checkbox") for a in page.all("input"))


def test_no_script_anywhere_and_everything_is_escaped():
    html = render_offer_page(offer_page(
        current=PlanSummary(EVIL, EVIL, description=EVIL, note=EVIL),
        offer=PlanSummary(EVIL, EVIL, description=EVIL),
        form_fields={EVIL: EVIL, "enc": "a+b/c=="},
        action_url="https://bill.ccbill.com/jpost/upgradeSubscription.cgi?x=\"><script>",
    ))
    assert "<script" not in html.lower()
    assert "<img" not in html.lower()
    page = Page(html)
    assert {tag for tag, _ in page.tags} <= {"html", "head", "meta", "title", "style", "body", "main", "h1", "h2",
                                             "section", "p", "form", "input", "div", "label", "button", "time"}
    hidden = {a["name"]: a["value"] for a in page.all("input") if a.get("type") == "hidden"}
    assert hidden == {EVIL: EVIL, "enc": "a+b/c=="}  # the values survive escaping exactly
    assert EVIL in page.plain_text


@pytest.mark.parametrize("url", ["javascript:alert(1)", "data:text/html,hi", "/relative", "ftp://x.example/"])
def test_the_form_only_posts_to_http_urls(url):
    with pytest.raises(ValueError):
        render_offer_page(offer_page(action_url=url))


def test_a_price_only_ccbill_knows_is_said_plainly():
    page = Page(render_offer_page(offer_page(
        offer=PlanSummary("Gold", "The price is shown on CCBill’s secure page before you confirm."))))
    assert "at the price CCBill shows me" in page.plain_text


def test_message_pages_and_the_no_js_refresh():
    waiting = render_message_page("We're preparing your upgrade", "Ready in a moment.", refresh_seconds=5)
    page = Page(waiting)
    assert {"http-equiv": "refresh", "content": "5"} in page.all("meta")
    assert {"href": ""} in page.all("a")  # "Check again now" reloads the same address without any script
    assert len(page.all("h1")) == 1 and page.all("html") == [{"lang": "en"}]
    plain = Page(render_message_page("This upgrade link has expired", EVIL, hint=EVIL))
    assert not [m for m in plain.all("meta") if m.get("http-equiv") == "refresh"]
    assert "<script" not in render_message_page("t", EVIL, hint=EVIL).lower()
    assert EVIL in plain.plain_text


def test_security_headers_allow_only_the_pages_own_stylesheet():
    headers = security_headers()
    assert headers["Content-Type"] == "text/html; charset=utf-8"
    assert headers["Cache-Control"] == "no-store"
    assert headers["Referrer-Policy"] == "no-referrer"  # the token must not leave in a Referer header
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["X-Content-Type-Options"] == "nosniff"
    digest = base64.b64encode(hashlib.sha256(STYLE.encode()).digest()).decode()
    assert f"style-src 'sha256-{digest}'" in CONTENT_SECURITY_POLICY
    assert "default-src 'none'" in CONTENT_SECURITY_POLICY and "script-src" not in CONTENT_SECURITY_POLICY
    assert f"<style>{STYLE}</style>" in render_offer_page(offer_page())


def _luminance(hex_colour: str) -> float:
    channels = [int(hex_colour[i:i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def _contrast(a: str, b: str) -> float:
    high, low = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def test_text_colours_meet_wcag_aa_contrast():
    colours = set(re.findall(r"#[0-9a-f]{6}", STYLE))
    assert colours <= {"#ffffff", "#1b1b1b", "#444444", "#0a4ea2", "#083d80", "#767676"}
    for text in ("#1b1b1b", "#444444", "#0a4ea2"):  # on the white page
        assert _contrast(text, "#ffffff") >= 4.5, text
    for background in ("#0a4ea2", "#083d80"):  # the button's white text
        assert _contrast("#ffffff", background) >= 4.5, background
    assert _contrast("#767676", "#ffffff") >= 3  # borders: non-text contrast

"""The consumer upgrade page's HTML: plain, semantic, accessible, and working without JavaScript.

* One ``<main>``, one ``<h1>``, a ``<section>`` per plan with its own heading; ``lang="en"``; a viewport meta.
* The form is an ordinary POST to CCBill's ``upgradeSubscription.cgi`` with hidden fields: no script, so it works
  in any browser and with scripts disabled. A required consent checkbox (native ``required``, labelled) makes the
  consumer state the price and the plan before anything is sent; it has no ``name``, so it is not posted to CCBill.
  The button is named ``submit`` with the value ``Upgrade Subscription``, as in the guide's example form.
* Colours: body text #1b1b1b on white (16.9:1), secondary text #444 (9.7:1), the button white on #0a4ea2 (7.9:1),
  borders #767676 (4.5:1); a visible focus ring. Sizes in rem, so browser zoom and text size settings apply.
* Pages that wait for something (the allowUpgrade post being prepared) reload themselves with
  ``<meta http-equiv="refresh">`` and also offer a plain "Check again" link.
* Every value is escaped (``html.escape`` with quotes) where it is written; nothing is written unescaped but the
  fixed markup of this module. Nothing personal is shown: the plan's price and period, the last four digits of the
  subscription ID, the offer. No secret is ever in a page: the ``enc`` value is ciphertext made for CCBill.

``security_headers`` are sent with every page: no caching, no referrer (the link's token must not reach CCBill or
anyone else in a Referer header), no framing, no sniffing, and a Content-Security-Policy that allows this page's
own stylesheet (by hash) and nothing else - no script at all.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape
from urllib.parse import urlsplit

from billops.ccbill.client import SUBMIT_BUTTON
from billops.upgrade_page.upgrade_offers import PlanSummary

STYLE = """
:root { color-scheme: light; }
* { box-sizing: border-box; }
body { margin: 0; background: #ffffff; color: #1b1b1b; font: 1rem/1.5 system-ui, -apple-system, "Segoe UI",
  Roboto, "Helvetica Neue", Arial, sans-serif; }
main { max-width: 36rem; margin: 0 auto; padding: 2rem 1.25rem 3rem; }
h1 { font-size: 1.75rem; line-height: 1.25; margin: 0 0 1.5rem; }
h2 { font-size: 1.125rem; margin: 0 0 0.5rem; }
section { border: 1px solid #767676; border-radius: 0.5rem; padding: 1rem 1.25rem; margin: 0 0 1rem; }
.offer { border: 2px solid #0a4ea2; }
.price { font-size: 1.25rem; font-weight: 600; margin: 0.25rem 0; }
.muted { color: #444444; }
p { margin: 0.5rem 0; }
form { margin: 1.5rem 0 1rem; }
.consent { display: flex; gap: 0.75rem; align-items: flex-start; margin: 0 0 1rem; }
.consent input { width: 1.25rem; height: 1.25rem; margin: 0.15rem 0 0; flex: none; }
button { font: inherit; font-weight: 600; color: #ffffff; background: #0a4ea2; border: 2px solid #0a4ea2;
  border-radius: 0.375rem; padding: 0.75rem 1.5rem; cursor: pointer; min-height: 2.75rem; }
button:hover { background: #083d80; border-color: #083d80; }
a { color: #0a4ea2; }
:focus-visible { outline: 3px solid #1b1b1b; outline-offset: 2px; }
.fine { font-size: 0.9375rem; color: #444444; }
""".strip()

STYLE_HASH = "sha256-" + base64.b64encode(hashlib.sha256(STYLE.encode("utf-8")).digest()).decode("ascii")
CONTENT_SECURITY_POLICY = (f"default-src 'none'; style-src '{STYLE_HASH}'; img-src 'none'; base-uri 'none'; "
                           "frame-ancestors 'none'")


def security_headers() -> dict[str, str]:
    return {
        "Content-Type": "text/html; charset=utf-8",
        "Cache-Control": "no-store",
        "Pragma": "no-cache",
        "Referrer-Policy": "no-referrer",
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        "X-Robots-Tag": "noindex, nofollow",
        "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    }


def e(value: object) -> str:
    """Escaped text for element content and quoted attribute values."""
    return escape("" if value is None else str(value), quote=True)


def human_time(moment: datetime) -> str:
    """"3 March 2026, 14:05 UTC" (unambiguous for every reader, whatever their locale)."""
    moment = moment.astimezone(UTC)
    return f"{moment.day} {moment.strftime('%B %Y, %H:%M')} UTC"


def machine_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _document(title: str, body: str, *, refresh_seconds: int | None = None) -> str:
    refresh = f'\n<meta http-equiv="refresh" content="{int(refresh_seconds)}">' if refresh_seconds else ""
    return (
        "<!doctype html>\n"
        '<html lang="en">\n'
        "<head>\n"
        '<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        '<meta name="robots" content="noindex, nofollow">\n'
        f'<meta name="referrer" content="no-referrer">{refresh}\n'
        f"<title>{e(title)}</title>\n"
        f"<style>{STYLE}</style>\n"
        "</head>\n"
        "<body>\n"
        f"<main>\n{body}\n</main>\n"
        "</body>\n"
        "</html>\n"
    )


def _plan_section(heading_id: str, heading: str, plan: PlanSummary, *, css_class: str = "",
                  show_title: bool = True) -> str:
    css = f' class="{e(css_class)}"' if css_class else ""
    parts = [f'<section aria-labelledby="{e(heading_id)}"{css}>',
             f'<h2 id="{e(heading_id)}">{e(heading)}</h2>',
             f"<p>{e(plan.title)}</p>" if show_title else "",
             f'<p class="price">{e(plan.price_text)}</p>']
    if plan.description:
        parts.append(f'<p class="muted">{e(plan.description)}</p>')
    if plan.note:
        parts.append(f'<p class="muted">{e(plan.note)}</p>')
    parts.append("</section>")
    return "\n".join(part for part in parts if part)


@dataclass(frozen=True)
class OfferPage:
    """Everything the offer page shows; ``form_fields`` are posted to ``action_url`` exactly as given."""

    current: PlanSummary
    offer: PlanSummary
    action_url: str
    form_fields: Mapping[str, str]
    valid_until: datetime


def render_offer_page(page: OfferPage) -> str:
    """The page with the current plan, the offer and the form that sends the consumer to CCBill."""
    action = urlsplit(page.action_url)
    if action.scheme not in ("https", "http") or not action.hostname:
        raise ValueError("the upgrade form must post to an http(s) URL")
    hidden = "\n".join(f'<input type="hidden" name="{e(name)}" value="{e(value)}">'
                       for name, value in page.form_fields.items())
    offer_name = page.offer.title
    consent = (f"I want to upgrade to {offer_name} at {page.offer.price_text}"
               if not page.offer.price_text.startswith("The price is shown") else
               f"I want to upgrade to {offer_name} at the price CCBill shows me")
    body = "\n".join([
        "<h1>Upgrade your subscription</h1>",
        _plan_section("current-plan", "Your current plan", page.current),
        _plan_section("offer", f"Upgrade to {offer_name}", page.offer, css_class="offer", show_title=False),
        f'<form method="post" action="{e(page.action_url)}" aria-labelledby="offer">',
        hidden,
        '<div class="consent">',
        '<input type="checkbox" id="consent" required aria-describedby="consent-hint">',
        f'<label for="consent">{e(consent)}. It replaces my current plan.</label>',
        "</div>",
        ('<p id="consent-hint" class="fine">Tick the box to confirm, then continue to CCBill, our payment '
         "processor, which charges the payment method of your current subscription.</p>"),
        # Named as in the guide's example form (<input type="submit" name="submit" value="Upgrade Subscription">):
        # CCBill's script receives the button with the hidden fields, exactly as from CCBill's own sample.
        f'<button type="submit" name="{e(SUBMIT_BUTTON[0])}" value="{e(SUBMIT_BUTTON[1])}">'
        f"Upgrade to {e(offer_name)}</button>",
        "</form>",
        (f'<p class="fine">This offer is open until <time datetime="{machine_time(page.valid_until)}">'
         f"{e(human_time(page.valid_until))}</time>. If you do not want to upgrade, simply close this page: "
         "nothing changes.</p>"),
    ])
    return _document(f"Upgrade to {offer_name}", body)


def render_message_page(title: str, message: str, *, hint: str | None = None,
                        refresh_seconds: int | None = None) -> str:
    """A page that says what happened and what to do next (invalid or expired link, waiting, unavailable)."""
    parts = [f"<h1>{e(title)}</h1>", f"<p>{e(message)}</p>"]
    if hint:
        parts.append(f'<p class="muted">{e(hint)}</p>')
    if refresh_seconds:
        parts.append(f'<p class="fine">This page checks again every {int(refresh_seconds)} seconds. '
                     '<a href="">Check again now</a>.</p>')
    return _document(title, "\n".join(parts), refresh_seconds=refresh_seconds)

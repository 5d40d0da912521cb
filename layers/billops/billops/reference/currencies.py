"""ISO-4217 currencies CCBill bills in (Appendix A of the Webhooks guide).

CCBill's webhooks and APIs use the numeric code ("840"); merchants and people think in the alpha code ("USD").
"""

NUMERIC_TO_ALPHA: dict[str, str] = {
    "036": "AUD",
    "124": "CAD",
    "392": "JPY",
    "826": "GBP",
    "840": "USD",
    "978": "EUR",
}
ALPHA_TO_NUMERIC: dict[str, str] = {alpha: numeric for numeric, alpha in NUMERIC_TO_ALPHA.items()}


def normalise_numeric(code: str | int | None) -> str | None:
    """CCBill's numeric currency code as the three-digit string of Appendix A ("36" -> "036"), or None if unknown."""
    if code is None:
        return None
    text = str(code).strip()
    if text.upper() in ALPHA_TO_NUMERIC:
        return ALPHA_TO_NUMERIC[text.upper()]
    if text.isdigit():
        padded = text.zfill(3)
        return padded if padded in NUMERIC_TO_ALPHA else None
    return None


def alpha_for(code: str | int | None) -> str | None:
    """The alpha code ("USD") for a numeric or alpha code, or None if CCBill does not bill in it."""
    numeric = normalise_numeric(code)
    return NUMERIC_TO_ALPHA.get(numeric) if numeric else None

"""What the CLI prints: human tables on stdout by default, one JSON document with ``--json``; errors on stderr.

Exit codes (every command): 0 done; 1 something failed or was refused (a bulk row, a replay that stays
quarantined, a record not found); 2 usage error; 3 an outcome is still unknown or not final (bulk --wait timed
out, operations left ``unknown``); 130 interrupted.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any, TextIO

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_UNKNOWN = 3
EXIT_INTERRUPTED = 130


class CliError(Exception):
    """A problem the operator must fix (a missing stack, a bad CSV...): printed without a traceback."""

    def __init__(self, message: str, exit_code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


def plain(value: Any) -> Any:
    """DynamoDB's Decimals, sets and bytes as JSON-friendly values."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else str(value)
    if isinstance(value, Mapping):
        return {str(key): plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    if isinstance(value, (set, frozenset)):
        return sorted(plain(item) for item in value)
    if isinstance(value, (bytes, bytearray)):
        return f"<{len(value)} bytes>"
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    return value


# Characters a terminal acts on instead of showing: C0 and C1 controls (ESC starts a control sequence that can
# rewrite the screen, set the window title, ...), DEL, and the Unicode bidi controls that reorder what is shown.
_TERMINAL_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def terminal_safe(text: str, keep: str = "") -> str:
    """``text`` with every character a terminal would act on written as an escape (``\\x1b``, ``\\u202e``);
    the characters in ``keep`` (e.g. a raw body's newlines) are left as they are. Webhook data is a stranger's
    text: printed raw, it could move the cursor, rewrite earlier lines or hide what follows."""

    def escape(match: re.Match[str]) -> str:
        char = match.group(0)
        if char in keep:
            return char
        code = ord(char)
        return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"

    return _TERMINAL_CONTROLS.sub(escape, text)


def to_json(value: Any) -> str:
    # json escapes C0 controls itself; C1 and bidi controls would pass through with ensure_ascii=False.
    text = json.dumps(plain(value), indent=2, sort_keys=False, ensure_ascii=False)
    return _TERMINAL_CONTROLS.sub(lambda match: match.group(0) if match.group(0) == "\n"  # the indentation's
                                  else f"\\u{ord(match.group(0)):04x}", text)


def cell(value: Any) -> str:
    """One value, on one line, safe for a terminal."""
    if value is None or value == "":
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (list, tuple)) and all(isinstance(item, (str, int, Decimal)) for item in value):
        return terminal_safe(", ".join(str(plain(item)) for item in value))
    if isinstance(value, (Mapping, list, tuple)):
        return terminal_safe(json.dumps(plain(value), ensure_ascii=False, separators=(",", ":")))
    return terminal_safe(str(plain(value)))


def render_table(rows: Iterable[Mapping[str, Any]], columns: Sequence[tuple[str, str]], *,
                 max_width: int = 60) -> str:
    """A left-aligned text table; ``columns`` is [(key, header)]. Cells longer than ``max_width`` are cut."""
    texts = [[_cut(cell(row.get(key)), max_width) for key, _ in columns] for row in rows]
    headers = [header for _, header in columns]
    widths = [max([len(header)] + [len(line[index]) for line in texts]) for index, header in enumerate(headers)]
    lines = ["  ".join(header.ljust(width) for header, width in zip(headers, widths)).rstrip(),
             "  ".join("-" * width for width in widths)]
    lines += ["  ".join(text.ljust(width) for text, width in zip(line, widths)).rstrip() for line in texts]
    return "\n".join(lines)


def render_fields(pairs: Iterable[tuple[str, Any]]) -> str:
    """``name: value`` lines, aligned."""
    pairs = [(name, cell(value)) for name, value in pairs]
    width = max((len(name) for name, _ in pairs), default=0)
    return "\n".join(f"{name.ljust(width)}  {value}" for name, value in pairs)


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


class Output:
    """Where a command's result goes: ``emit(document, human_text)`` prints one or the other."""

    def __init__(self, json_mode: bool = False, stream: TextIO | None = None, errors: TextIO | None = None) -> None:
        self.json_mode = json_mode
        self.stream = stream or sys.stdout
        self.errors = errors or sys.stderr

    def emit(self, document: Any, human: str | None = None) -> None:
        if self.json_mode:
            print(to_json(document), file=self.stream, flush=True)
        elif human is not None:
            print(human, file=self.stream, flush=True)

    def note(self, text: str) -> None:
        """A remark for the human operator (stderr, so --json output stays one document)."""
        print(terminal_safe(text, keep="\n"), file=self.errors, flush=True)

"""What the CLI prints: human tables on stdout by default, one JSON document with ``--json``; errors on stderr.

Exit codes (every command): 0 done; 1 something failed or was refused (a bulk row, a replay that stays
quarantined, a record not found); 2 usage error; 3 an outcome is still unknown or not final (bulk --wait timed
out, operations left ``unknown``); 130 interrupted.
"""

from __future__ import annotations

import json
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


def to_json(value: Any) -> str:
    return json.dumps(plain(value), indent=2, sort_keys=False, ensure_ascii=False)


def cell(value: Any) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (list, tuple)) and all(isinstance(item, (str, int, Decimal)) for item in value):
        return ", ".join(str(plain(item)) for item in value)
    if isinstance(value, (Mapping, list, tuple)):
        return json.dumps(plain(value), ensure_ascii=False, separators=(",", ":"))
    return str(plain(value))


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
        print(text, file=self.errors, flush=True)

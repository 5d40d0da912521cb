"""A progress bar on stderr: redrawn in place on a terminal, a line every tenth of the way otherwise (CI logs,
pipes), nothing when disabled. stdout is never touched, so ``--json`` output stays one clean document."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Self, TextIO

BAR_WIDTH = 28
REDRAW_SECONDS = 0.1


class Progress:
    def __init__(self, total: int, label: str, *, stream: TextIO | None = None, enabled: bool = True,
                 tty: bool | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.total = max(0, int(total))
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled
        self.tty = _is_tty(self.stream) if tty is None else tty
        self.clock = clock
        self.done = 0
        self.detail = ""
        self._started = clock()
        self._drawn_at: float | None = None
        self._last_tenth = -1
        self._last_printed: tuple[int, str] | None = None
        self._closed = False
        self._draw(force=True)

    def advance(self, count: int = 1, detail: str | None = None) -> None:
        self.update(self.done + count, detail)

    def update(self, done: int, detail: str | None = None) -> None:
        self.done = min(max(0, done), self.total) if self.total else max(0, done)
        if detail is not None:
            self.detail = detail
        self._draw()

    def close(self, detail: str | None = None) -> None:
        if self._closed:
            return
        if detail is not None:
            self.detail = detail
        self._draw(force=True)
        if self.enabled and self.tty:
            self.stream.write("\n")
            self.stream.flush()
        self._closed = True

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # --- drawing -------------------------------------------------------------------------------------------------

    def line(self) -> str:
        fraction = self.done / self.total if self.total else 1.0
        elapsed = max(self.clock() - self._started, 1e-9)
        rate = self.done / elapsed
        text = f"{self.label} [{_bar(fraction)}] {self.done}/{self.total} {fraction:4.0%}"
        if self.tty and 0 < self.done < self.total and rate > 0:
            text += f"  {rate:.1f}/s  ETA {_duration((self.total - self.done) / rate)}"
        if self.detail:
            text += f"  {self.detail}"
        return text

    def _draw(self, force: bool = False) -> None:
        if not self.enabled or self._closed:
            return
        now = self.clock()
        if self.tty:
            if not force and self._drawn_at is not None and now - self._drawn_at < REDRAW_SECONDS \
                    and self.done < self.total:
                return
            self.stream.write("\r\x1b[2K" + self.line())
            self.stream.flush()
            self._drawn_at = now
            return
        tenth = int(10 * self.done / self.total) if self.total else 10
        state = (self.done, self.detail)
        if tenth > self._last_tenth or (force and state != self._last_printed):
            self.stream.write(self.line() + "\n")
            self.stream.flush()
            self._drawn_at = now
            self._last_tenth = max(tenth, self._last_tenth)
            self._last_printed = state


def _bar(fraction: float) -> str:
    filled = round(BAR_WIDTH * min(max(fraction, 0.0), 1.0))
    return "#" * filled + "." * (BAR_WIDTH - filled)


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}" if seconds >= 3600 \
        else f"{seconds // 60}:{seconds % 60:02d}"


def _is_tty(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False

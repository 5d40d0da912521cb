"""billops.cold_start: the collector is held off during a container's init, once per process, and always let go."""

from __future__ import annotations

import pytest

from billops import cold_start


class RecordingGc:
    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self.calls: list[str] = []

    def isenabled(self) -> bool:
        return self.enabled

    def disable(self) -> None:
        self.calls.append("disable")
        self.enabled = False

    def enable(self) -> None:
        self.calls.append("enable")
        self.enabled = True

    def freeze(self) -> None:
        self.calls.append(f"freeze (collector {'on' if self.enabled else 'off'})")


@pytest.fixture
def recording(monkeypatch):
    """A fresh process as cold_start sees it: no init and no invocation yet, the collector recorded."""
    gc = RecordingGc()
    monkeypatch.setattr(cold_start, "gc", gc)
    monkeypatch.setattr(cold_start, "_first_init", True)
    monkeypatch.setattr(cold_start, "_first_call", True)
    return gc


def _an_init() -> list[object]:
    return [object() for _ in range(3)]  # what a handler module's set-up makes


def test_the_first_init_runs_without_the_collector_then_freezes_what_it_made(recording):
    with cold_start.container_init():
        assert recording.enabled is False
    assert recording.calls == ["disable", "freeze (collector off)", "enable"]
    assert recording.enabled is True


def test_a_later_init_in_the_same_process_leaves_the_collector_alone(recording):
    with cold_start.container_init():
        _an_init()
    recording.calls.clear()
    with cold_start.container_init():
        assert recording.enabled is True
    assert recording.calls == []


def test_an_init_that_fails_still_lets_the_collector_run_again(recording):
    with pytest.raises(RuntimeError), cold_start.container_init():
        raise RuntimeError("a setting cannot be honoured")
    assert recording.enabled is True


def test_a_collector_that_was_off_stays_off(recording):
    recording.enabled = False
    with cold_start.container_init():
        _an_init()
    assert recording.enabled is False
    assert "enable" not in recording.calls


def test_the_first_invocation_runs_without_the_collector_the_next_ones_with_it(recording):
    seen = []
    handler = cold_start.first_invocation(lambda event, context: seen.append(recording.enabled) or event)
    assert handler({"n": 1}, None) == {"n": 1}
    assert handler({"n": 2}, None) == {"n": 2}
    assert seen == [False, True]
    assert recording.calls == ["disable", "freeze (collector off)", "enable"]


def test_a_first_invocation_that_fails_still_lets_the_collector_run_again(recording):
    def failing(event, context):
        raise RuntimeError("storage unavailable")

    with pytest.raises(RuntimeError):
        cold_start.first_invocation(failing)({}, None)
    assert recording.enabled is True

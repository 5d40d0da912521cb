"""A function's observability, the same for every function: Powertools' Logger and Metrics (service and namespace
from the template's POWERTOOLS_* variables) and ``count(name)``, one Count metric. Imports nothing of the HTTP
resolver, so the stream and queue functions load only this."""

from __future__ import annotations

from collections.abc import Callable

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit


def observability() -> tuple[Logger, Metrics, Callable[[str], None]]:
    """A function's logger, its metrics and ``count(name)`` (one Count metric)."""
    logger, metrics = Logger(), Metrics()

    def count(name: str) -> None:
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=1)

    return logger, metrics, count

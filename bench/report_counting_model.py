"""What the projector's daily-figures counting writes under a burst of one subaccount, by the layout of its counted
items (billops.storage.reports_table): keyed by the minute of receipt (before) or by the second (now).

A model, not a measurement: moto reports no consumed capacity for TransactWriteItems. It follows DynamoDB's
billing rules: an update is billed for the larger of the item before and after it, in whole kilobytes, and twice
inside a transaction; an item may not exceed 400 KB. Each stream batch of ``batch`` deliveries, all of one
subaccount and received in order at ``rate`` a second, is one transaction: one ADD to the day's figures item
(~``figures_bytes``) and one ADD of its keys to each counted item its deliveries fall in. Keys are CCBill
transaction keys (``RenewalSuccess#txn#`` + 19 digits, 38 bytes).

    python -m bench.report_counting_model            # the table docs/scale.md quotes
"""

from __future__ import annotations

import argparse
import math

ITEM_LIMIT = 400 * 1024
KEY_BYTES = len("RenewalSuccess#txn#0126110501000000000")
ITEM_OVERHEAD = len("scope") + len("900100#0000") + len("day") + len("counted#2026-11-05#2026-11-05T10:00:00") \
    + len("keys") + len("expires_at") + 5


def simulate(rate: int, seconds: int, batch: int, bucket_seconds: int, figures_bytes: int = 300) -> dict:
    """Write units per delivery and the largest counted item, for ``rate`` deliveries a second over ``seconds``."""
    sizes: dict[int, int] = {}
    units = 0
    largest = 0
    failed_at = None
    total = rate * seconds
    for start in range(0, total, batch):
        units += 2 * math.ceil(figures_bytes / 1024)
        touched: dict[int, int] = {}
        for index in range(start, min(total, start + batch)):
            bucket = (index // rate) // bucket_seconds
            touched[bucket] = touched.get(bucket, 0) + 1
        for bucket, added in touched.items():
            before = sizes.get(bucket, 0)
            after = (before or ITEM_OVERHEAD) + added * KEY_BYTES
            if after > ITEM_LIMIT and failed_at is None:
                failed_at = start
            units += 2 * math.ceil(max(before, after) / 1024)
            sizes[bucket] = after
            largest = max(largest, after)
    return {"rate": rate, "units_per_delivery": units / total, "largest_item_kb": largest / 1024,
            "fails_after": failed_at}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=25)
    parser.add_argument("--seconds", type=int, default=60)
    arguments = parser.parse_args()
    print(f"one subaccount, {arguments.seconds} s, stream batches of {arguments.batch}")
    print("| deliveries/s | by the minute: WRU per delivery, largest item | by the second: WRU per delivery, "
          "largest item |")
    print("|---|---|---|")
    for rate in (10, 25, 100, 250, 1000):
        minute = simulate(rate, arguments.seconds, arguments.batch, 60)
        second = simulate(rate, arguments.seconds, arguments.batch, 1)
        failing = f" (over 400 KB after {minute['fails_after']:,} deliveries: the batch fails)" \
            if minute["fails_after"] is not None else ""
        print(f"| {rate:,} | {minute['units_per_delivery']:.2f}, {minute['largest_item_kb']:.0f} KB{failing} | "
              f"{second['units_per_delivery']:.2f}, {second['largest_item_kb']:.1f} KB |")


if __name__ == "__main__":
    main()

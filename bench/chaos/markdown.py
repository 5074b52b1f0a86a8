"""`python -m bench.chaos.markdown var/chaos/<run>/chaos.json`: the run's table for
docs/reliability.md (one row per scenario, invariants first, then what the faults cost)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

ROWS = (
    ("accepted", "jobs accepted (of submitted)"), ("statuses", "finished as"),
    ("jobs_lost", "jobs lost"), ("clients_gave_up", "clients never answered"),
    ("jobs_stuck", "jobs stuck"), ("jobs_submitted_twice", "jobs made twice"),
    ("images_stored_twice", "images stored twice"),
    ("usage_without_image", "usage events without an image"),
    ("images_without_usage", "images without a usage event"),
    ("succeeded_missing_images", "succeeded jobs missing an image"),
    ("meter_differences", "Stripe summaries ≠ ledger (lines)"),
    ("meter_events_unsent", "usage events not in Stripe"),
    ("quota_reserved_left", "quota reserved left over"),
    ("quota_used_vs_ledger", "quota used ≠ ledger"),
    ("spend_beyond_cap", "spend beyond the cap"), ("half_written_files", "half-written files"),
    ("client_5xx", "client-visible 5xx"), ("client_connection_errors", "client connection errors"),
    ("client_retries", "client retries"), ("recovery_s", "recovery s (faults end → all done)"),
    ("calls_per_image", "provider calls ÷ images"), ("queue_wait_s", "queue wait s (p50 / max)"),
    ("rate", "submits/s"), ("phases_s", "wall s: faults end / all done / counted"),
)  # fmt: skip


def _cell(key: str, scenario: dict[str, Any]) -> str:
    value: Any = scenario.get(key)
    if key == "accepted":
        return f"{value} ({scenario['submits']})"
    if key == "statuses":
        return ", ".join(f"{n} {s}" for s, n in sorted(value.items()))
    if key == "queue_wait_s":
        return f"{value['p50']} / {value['max']}"
    if key == "phases_s":
        return f"{value['faults']} / {value['settled']} / {value['counted']}" if value else ""
    if key == "rate" and value:
        return f"{value:.3g}"
    return str(value)


def render(report: dict[str, Any]) -> str:
    scenarios = report["scenarios"]
    lines = [
        "| | " + " | ".join(s["scenario"] for s in scenarios) + " |",
        "|---|" + "---|" * len(scenarios),
    ]
    for key, label in ROWS:
        lines.append(f"| {label} | " + " | ".join(_cell(key, s) for s in scenarios) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(render(json.loads(Path(sys.argv[1]).read_text())))

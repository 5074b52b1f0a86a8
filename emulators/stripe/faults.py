"""Injected faults, set at run time through ``POST /_emulator/faults``.

Rate-based faults roll a (seedable) RNG per API request; ``next_n`` queues deterministic ones
that take precedence. Faults answered before the handler runs change nothing and save no
idempotent result; ``drop_after_commit`` runs the handler, saves the result, then aborts the
connection without an answer, so the SDK retries with the same Idempotency-Key.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from .errors import ApiError

PRE_KINDS = ("429", "429_lock_timeout", "500", "503_retry")
KINDS = (*PRE_KINDS, "drop_after_commit")
RATE_KEYS = {
    "rate_429": "429",
    "rate_429_lock_timeout": "429_lock_timeout",
    "rate_500": "500",
    "rate_503_retry": "503_retry",
}


@dataclass
class Faults:
    rates: dict[str, float] = field(default_factory=dict)
    drop_after_commit_rate: float = 0.0
    latency_s: float = 0.0
    path_prefix: str = ""
    queued: list[str] = field(default_factory=list)
    rng: random.Random = field(default_factory=random.Random)

    def configure(self, body: dict[str, Any]) -> None:
        """Replace the current faults; raise ValueError on an unknown or bad option."""
        allowed = {*RATE_KEYS, "drop_after_commit_rate", "latency_s", "path_prefix", "seed"}
        unknown = set(body) - allowed - {"next_n"}
        if unknown:
            raise ValueError(f"unknown fault options: {sorted(unknown)}")
        rates = {RATE_KEYS[k]: _probability(body[k], k) for k in RATE_KEYS if k in body}
        if sum(rates.values()) > 1:
            raise ValueError("the rate_* probabilities add up to more than 1")
        self.rates = rates
        self.drop_after_commit_rate = _probability(body.get("drop_after_commit_rate", 0), "drop")
        self.latency_s = float(body.get("latency_s", 0))
        self.path_prefix = str(body.get("path_prefix") or "")
        self.queued = _queue(body.get("next_n"))
        self.rng = random.Random(body.get("seed"))

    def reset(self) -> None:
        self.configure({})

    def describe(self) -> dict[str, Any]:
        rates = {key: self.rates.get(kind, 0.0) for key, kind in RATE_KEYS.items()}
        return {
            **rates,
            "drop_after_commit_rate": self.drop_after_commit_rate,
            "latency_s": self.latency_s,
            "path_prefix": self.path_prefix,
            "queued": list(self.queued),
        }

    def pick(self, method: str, path: str) -> str | None:
        """The fault for this request, if any: a PRE_KIND or "drop_after_commit"."""
        if not path.startswith(("/v1/", "/v2/")) or not path.startswith(self.path_prefix):
            return None
        if self.queued:
            return self.queued.pop(0)
        roll, edge = self.rng.random(), 0.0
        for kind, rate in self.rates.items():
            edge += rate
            if roll < edge:
                return kind
        if method == "POST" and self.rng.random() < self.drop_after_commit_rate:
            return "drop_after_commit"
        return None


def _probability(value: Any, name: str) -> float:
    rate = float(value)
    if not 0 <= rate <= 1:
        raise ValueError(f"{name} must be between 0 and 1")
    return rate


def _queue(spec: Any) -> list[str]:
    if not spec:
        return []
    specs = spec if isinstance(spec, list) else [spec]
    queued: list[str] = []
    for item in specs:
        kind = str(item.get("kind"))
        if kind not in KINDS:
            raise ValueError(f"next_n kind must be one of {KINDS}")
        queued.extend([kind] * int(item.get("n", 1)))
    return queued


def fault_error(kind: str) -> ApiError:
    if kind == "429":
        return ApiError(
            "Too many requests hit the API too quickly. "
            "We recommend an exponential backoff of your requests.",
            status=429,
            code="rate_limit",
        )
    if kind == "429_lock_timeout":
        return ApiError(
            "This object cannot be accessed right now because another API request or Stripe "
            "process is currently accessing it. Please retry your request.",
            status=429,
            code="lock_timeout",
            headers={"Stripe-Should-Retry": "true"},
        )
    if kind == "503_retry":
        return ApiError(
            "The server is temporarily unavailable.",
            status=503,
            type="api_error",
            headers={"Stripe-Should-Retry": "true"},
        )
    return ApiError("An unknown error occurred.", status=500, type="api_error")

"""Fault injection: random rates (set at start or at run time) and deterministic prompt triggers.

Triggers, written anywhere in the prompt text:
  [[fail:CODE]]      always fail with CODE (400, 403, 404, 429, 500, 503, 504)
  [[fail:CODExN]]    the first N calls with this exact prompt fail, later calls succeed
  [[slow:S]]         answer S seconds late (past a client's timeout)
  [[block]]          promptFeedback.blockReason PROHIBITED_CONTENT, no candidates
  [[safety]]         finishReason IMAGE_SAFETY, no image
  [[noimage]]        finishReason STOP with a text part only
  [[html502]]        an HTML 502 page, as a load balancer sends it
  [[drop]]           close the connection without an answer
  [[newfields]]      the answer carries fields no SDK knows yet (core.with_newer_fields);
  [[newfields:parts]]  in each part too
  [[expire]]         (batches) the job ends EXPIRED
  [[c2pa:tampered]]  the image's C2PA manifest is kept but one pixel byte is changed (Invalid)
  [[c2pa:none]]      the image carries no C2PA manifest

Rates can also be set for one model only (`POST /_emulator/faults {"model": "...",
"rate_429": 1.0}`): that model's rates then replace the global ones for its calls, so a test
can throttle Lite and leave Flash working.
"""

from __future__ import annotations

import random
import re
import threading
from dataclasses import asdict, dataclass, fields
from typing import Any

_FAIL = re.compile(r"\[\[fail:(\d{3})(?:x(\d+))?\]\]")
_SLOW = re.compile(r"\[\[slow:(\d+(?:\.\d+)?)\]\]")


@dataclass
class FaultRates:
    rate_429: float = 0.0
    rate_500: float = 0.0
    rate_503: float = 0.0
    slow_rate: float = 0.0
    slow_seconds: float = 30.0
    drop_rate: float = 0.0  # close the connection without an answer, as [[drop]] does
    retry_delay_s: float = 2.0

    def update(self, values: dict[str, Any]) -> None:
        known = {f.name for f in fields(self)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown fault settings: {sorted(unknown)}")
        for key, value in values.items():
            setattr(self, key, float(value))

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


@dataclass(frozen=True)
class Decision:
    """What to do with one request: an HTTP error, a special outcome, extra delay."""

    error_code: int | None = None
    outcome: str | None = None  # block | safety | noimage | html502 | drop
    extra_delay_s: float = 0.0


class FaultInjector:
    def __init__(self, rates: FaultRates, seed: int = 0) -> None:
        self.rates = rates
        self.by_model: dict[str, FaultRates] = {}
        self._rng = random.Random(seed)
        self._seed = seed
        self._calls: dict[str, int] = {}
        self._lock = threading.Lock()

    def reset(self) -> None:
        with self._lock:
            self._calls.clear()
            self.by_model.clear()
            self._rng = random.Random(self._seed)

    def set_model_rates(self, model: str, values: dict[str, Any]) -> FaultRates:
        """Rates for one model's calls only (starting from none), replacing the global ones."""
        rates = FaultRates(**self.by_model.get(model, FaultRates()).as_dict())
        rates.update(values)
        with self._lock:
            self.by_model[model] = rates
        return rates

    def models_as_dict(self) -> dict[str, dict[str, float]]:
        return {model: rates.as_dict() for model, rates in self.by_model.items()}

    def decide(self, prompt: str, *, apply_rates: bool = True, model: str = "") -> Decision:
        extra = 0.0
        slow = _SLOW.search(prompt)
        if slow:
            extra = float(slow.group(1))
        fail = _FAIL.search(prompt)
        if fail:
            code, times = int(fail.group(1)), fail.group(2)
            with self._lock:
                count = self._calls.get(prompt, 0) + 1
                self._calls[prompt] = count
            if times is None or count <= int(times):
                return Decision(error_code=code, extra_delay_s=extra)
        for marker in ("block", "safety", "noimage", "html502", "drop"):
            if f"[[{marker}]]" in prompt:
                return Decision(outcome=marker, extra_delay_s=extra)
        if apply_rates:
            with self._lock:
                roll = self._rng.random()
                slow_roll = self._rng.random()
            r = self.by_model.get(model.removeprefix("models/"), self.rates)
            if slow_roll < r.slow_rate:
                extra += r.slow_seconds
            if roll < r.rate_429:
                return Decision(error_code=429, extra_delay_s=extra)
            if roll < r.rate_429 + r.rate_500:
                return Decision(error_code=500, extra_delay_s=extra)
            if roll < r.rate_429 + r.rate_500 + r.rate_503:
                return Decision(error_code=503, extra_delay_s=extra)
            if roll < r.rate_429 + r.rate_500 + r.rate_503 + r.drop_rate:
                return Decision(outcome="drop", extra_delay_s=extra)
        return Decision(extra_delay_s=extra)

"""A tenant's fallback policy: which other models a job may move to when its own model is
throttled, at what price at most, and after how long. Plain data and its validation; the
decision and the switch are `generation/fallback.py`."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from config.errors import BunchError
from core.catalog import MODELS
from tenants.models import Plan

DEFAULT_AFTER_S = 20.0
MAX_AFTER_S = 3600.0


class InvalidPolicy(BunchError):
    status = 400
    code = "invalid_fallback_policy"


@dataclass(frozen=True)
class FallbackPolicy:
    models: tuple[str, ...]
    max_price_per_image: Decimal  # USD, the billed price (provider price + markup)
    after_s: float = DEFAULT_AFTER_S

    def as_json(self) -> dict[str, Any]:
        return {
            "models": list(self.models),
            "max_price_per_image": str(self.max_price_per_image),
            "after_s": self.after_s,
        }


def _fail(field: str, message: str) -> InvalidPolicy:
    return InvalidPolicy(message, fields={field: [message]})


def policy_parse(raw: Any, *, plan: Plan, primary: str | None = None) -> FallbackPolicy:
    """A policy from a request body, or a 400 that names the field. Only models of `plan`."""
    if not isinstance(raw, dict):
        raise _fail("fallback", "The fallback policy must be a JSON object.")
    unknown = set(raw) - {"models", "max_price_per_image", "after_s"}
    if unknown:
        raise _fail(sorted(unknown)[0], f"Unknown field(s): {', '.join(sorted(unknown))}.")
    models = raw.get("models")
    if not isinstance(models, list) or not models or not all(isinstance(m, str) for m in models):
        raise _fail("models", 'models must be a non-empty list of model names, e.g. ["flash"].')
    if len(set(models)) != len(models):
        raise _fail("models", "models lists a model twice.")
    for model in models:
        if model not in MODELS:
            raise _fail("models", f"Unknown model {model!r}; use one of {', '.join(MODELS)}.")
        if not plan.allows_tier(model):
            raise _fail(
                "models",
                f"Your plan does not include the {model!r} model; it allows "
                f"{', '.join(plan.allowed_tiers)}.",
            )
        if model == primary:
            raise _fail("models", f"{model!r} is the job's own model.")
    try:
        cap = Decimal(str(raw.get("max_price_per_image")))
    except InvalidOperation:
        cap = Decimal(-1)
    if raw.get("max_price_per_image") is None or not cap.is_finite() or cap <= 0 or cap > 100:
        raise _fail("max_price_per_image", "max_price_per_image must be a USD amount above 0.")
    after = raw.get("after_s", DEFAULT_AFTER_S)
    if (
        isinstance(after, bool)
        or not isinstance(after, int | float)
        or not 0 <= after <= MAX_AFTER_S
    ):
        raise _fail("after_s", f"after_s must be a number of seconds from 0 to {MAX_AFTER_S:g}.")
    return FallbackPolicy(models=tuple(models), max_price_per_image=cap, after_s=float(after))


def policy_from_json(data: Any) -> FallbackPolicy | None:
    """A stored policy (a tenant's, or a job's own); None for none or `{"enabled": false}`."""
    if not isinstance(data, dict) or data.get("enabled") is False or not data.get("models"):
        return None
    return FallbackPolicy(
        models=tuple(data["models"]),
        max_price_per_image=Decimal(str(data["max_price_per_image"])),
        after_s=float(data.get("after_s", DEFAULT_AFTER_S)),
    )

"""Named writes of edit conversations: start one, add a turn, keep what the model said.

A turn is a job of one image, billed as any job is (from the response's usage); its
request carries the whole history before it (`ingest.job_request` asks
`request_history`), and when its image is stored the turn's user and model contents join
the history in the same transaction (`turn_store`). A turn runs only after the one
before it has finished: the model's answer to turn k is part of turn k+1's input.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from billing.pricing import Cost, estimate_image_cost, estimate_tokens
from config.errors import BunchError, Conflict
from core.catalog import MODELS, Mode
from core.money import from_nanos, to_nanos
from generation import queue
from generation.conversations import history as hist
from generation.models import Conversation, ConversationTurn, Image, Job, Kind
from generation.providers.types import ImageResult
from generation.services import (
    MAX_PROMPT_CHARS,
    InvalidRequest,
    nearest_ratio,
    require_active,
)
from tenants.models import ApiKey, Tenant
from tenants.services import quota_period_id, quota_reserve


class HistoryTooLong(BunchError):
    status = 400
    code = "history_too_long"


class TurnInProgress(Conflict):
    code = "turn_in_progress"


@dataclass(frozen=True)
class TurnEstimate:
    """What the next turn would send and cost at most: the history before it (text and
    images), the prompt, and the per-image estimate with all of it at the input price."""

    history: hist.Weight
    prompt_tokens: int
    input_images: int  # the source image, on the first turn only
    input_tokens: int
    cost: Cost

    @property
    def within_limit(self) -> bool:
        return self.input_tokens <= hist.MAX_INPUT_TOKENS


def _invalid(name: str, message: str, code: str = "invalid_request") -> InvalidRequest:
    return InvalidRequest(message, code=code, fields={name: [message]})


def conversation_start(
    *,
    tenant: Tenant,
    image: Image,
    tier: str = "lite",
    api_key: ApiKey | None = None,
    user: User | None = None,
    now: dt.datetime | None = None,
) -> Conversation:
    """A conversation about `image`, with no turns yet. The model is fixed for its life:
    thought signatures are the model's own."""
    require_active(tenant)
    if tier not in MODELS:
        raise _invalid("model", f"Unknown model {tier!r}; use one of {', '.join(MODELS)}.")
    if not tenant.plan.allows_tier(tier):
        raise BunchError(
            f"Your plan does not include the {tier!r} model; it allows "
            f"{', '.join(tenant.plan.allowed_tiers)}.",
            code="model_not_in_plan",
            status=403,
        )
    ratio = image.job.aspect_ratio if image.job else nearest_ratio(image.width, image.height)
    if ratio not in MODELS[tier].aspect_ratios:
        ratio = nearest_ratio(image.width, image.height, MODELS[tier].aspect_ratios)
    now = now or timezone.now()
    return Conversation.objects.create(
        tenant=tenant,
        source_image=image,
        tier=tier,
        aspect_ratio=ratio,
        api_key=api_key,
        created_by=user,
        created_at=now,
        updated_at=now,
    )


def turn_estimate(*, conversation: Conversation, prompt: str = "") -> TurnEstimate:
    """The next turn's input and its "up to" cost, counted as every estimate counts input
    (billing.pricing): history text and prompt a token per byte, 1,120 per image."""
    history = conversation.history or []
    weight = hist.weight(history)
    first = not history
    images = weight.images + (1 if first else 0)
    text = "".join([*hist.texts(history), prompt])
    cost = estimate_image_cost(
        tier=conversation.tier,
        mode=Mode.STANDARD,
        image_size="1K",
        prompt=text,
        input_images=images,
        markup=conversation.tenant.plan.markup_per_image,
    )
    input_tokens = estimate_tokens(prompt=text, input_images=images)
    return TurnEstimate(
        history=weight,
        prompt_tokens=len(prompt.encode()),
        input_images=1 if first else 0,
        input_tokens=input_tokens,
        cost=cost,
    )


def _check_prompt(prompt: str) -> None:
    if not prompt.strip():
        raise _invalid("prompt", "The prompt is empty.")
    if len(prompt) > MAX_PROMPT_CHARS:
        raise _invalid("prompt", f"The prompt is longer than {MAX_PROMPT_CHARS} characters.")


def _last_image_id(conversation: Conversation) -> Any:
    """The image the next turn edits: the last turn's, else the source."""
    ids = hist.image_ids(conversation.history or [])
    return ids[-1] if ids else conversation.source_image_id


def conversation_turn_submit(
    *,
    tenant: Tenant,
    conversation: Conversation,
    prompt: str,
    api_key: ApiKey | None = None,
    user: User | None = None,
    interactive: bool = False,
    now: dt.datetime | None = None,
) -> ConversationTurn:
    """Add a turn: refuse a history past the model's input limit (400 before any call),
    reserve the turn's estimate, create its job and ring for it after commit."""
    require_active(tenant)
    _check_prompt(prompt)
    now = now or timezone.now()
    period_id = quota_period_id(tenant=tenant, now=now)
    with transaction.atomic():
        # One turn at a time per conversation: the row lock orders concurrent submits.
        locked = Conversation.objects.select_for_update().select_related("tenant__plan")
        conversation = locked.get(pk=conversation.pk)
        last = conversation.turns.select_related("job").order_by("-index").first()
        if last is not None and not last.job.is_finished:
            raise TurnInProgress(
                f"Turn {last.index} is still {last.job.status}; add the next turn when it "
                "has finished (its answer is part of the next turn's input)."
            )
        estimate = turn_estimate(conversation=conversation, prompt=prompt)
        if not estimate.within_limit:
            raise HistoryTooLong(
                f"This turn would send about {estimate.input_tokens:,} input tokens "
                f"(history {estimate.history.tokens:,}: {estimate.history.images} images at "
                f"{hist.INPUT_IMAGE_TOKENS:,} and {estimate.history.text_tokens:,} of text; "
                f"prompt {estimate.prompt_tokens:,}); the model accepts at most "
                f"{hist.MAX_INPUT_TOKENS:,}. Start a new conversation from the last image.",
                fields={"prompt": ["The conversation's history is at the model's input limit."]},
            )
        nanos = to_nanos(estimate.cost.billed)
        index = last.index + 1 if last is not None else 1
        job = Job.objects.create(
            tenant=tenant,
            api_key=api_key,
            created_by=user,
            priority=Job.Priority.INTERACTIVE
            if interactive or api_key is None
            else Job.Priority.API,
            kind=Kind.IMAGE,
            prompt=prompt,
            model_prompt=prompt,  # sent as written: the history keeps what was said
            aspect_ratio=conversation.aspect_ratio,
            tier=conversation.tier,
            count=1,
            input_image_ids=[] if conversation.history else [str(conversation.source_image_id)],
            parent_image_id=_last_image_id(conversation),
            metadata={"conversation_id": str(conversation.pk), "turn": index},
            # Another model could not read this one's thought signatures.
            fallback={"enabled": False},
            estimated_cost=from_nanos(nanos),
            reserved_images=1,
            reserved_nanos=nanos,
            quota_period_id=period_id,
            created_at=now,
        )
        turn = ConversationTurn.objects.create(
            conversation=conversation,
            index=index,
            prompt=prompt,
            job=job,
            history_text_tokens=estimate.history.text_tokens,
            history_images=estimate.history.images,
            input_tokens=estimate.input_tokens,
            created_at=now,
        )
        reservation = quota_reserve(
            tenant=tenant, images=1, amount=job.estimated_cost, now=now, period_id=period_id
        )
        if reservation.period_id != period_id:
            Job.objects.filter(pk=job.pk).update(quota_period_id=reservation.period_id)
        Conversation.objects.filter(pk=conversation.pk).update(updated_at=now)
        queue.enqueue_job_on_commit(job.pk)
    return turn


# The runner's side (generation/ingest.py) ------------------------------------------------


def _turn_of(job: Job) -> ConversationTurn | None:
    # Only edits can be turns: a plain job costs no query here.
    if job.parent_image_id is None:
        return None
    return (
        ConversationTurn.objects.select_related("conversation__source_image")
        .filter(job_id=job.pk)
        .first()
    )


def _read_image(tenant_id: int) -> Any:
    def read(image_id: str) -> bytes:
        image = Image.objects.get(pk=image_id, tenant_id=tenant_id)
        with image.file.open("rb") as fh:
            return bytes(fh.read())

    return read


def request_history(job: Job) -> tuple[dict[str, Any], ...]:
    """The history a turn's job sends before its own prompt (empty for other jobs)."""
    turn = _turn_of(job)
    if turn is None or not turn.conversation.history:
        return ()
    return tuple(hist.expand(turn.conversation.history, _read_image(job.tenant_id)))


def turn_store(*, job: Job, image: Image, result: ImageResult) -> None:
    """Called inside the transaction that stores a job's image: a turn's user and model
    contents join its conversation's history, the image bytes named by id."""
    turn = _turn_of(job)
    if turn is None:
        return
    conversation = Conversation.objects.select_for_update().get(pk=turn.conversation_id)
    source = turn.conversation.source_image
    known = {image.sha256: str(image.pk), source.sha256: str(source.pk)}
    added = hist.compact(list(result.history[-2:]), known)
    conversation.history = [*(conversation.history or []), *added]
    conversation.updated_at = timezone.now()
    conversation.save(update_fields=["history", "updated_at"])

"""Bodies of the edit-conversation API: input serializers, and output built as dicts
whose schema the `…Out` serializers declare."""

from __future__ import annotations

from typing import Any

from django.urls import reverse
from rest_framework import serializers

from config.serializers import StrictSerializer
from core.catalog import MODELS
from core.money import usd
from generation.conversations import history as hist
from generation.conversations import selectors
from generation.conversations.services import TurnEstimate, turn_estimate
from generation.models import Conversation, ConversationTurn, Job
from generation.serializers import ImageOut, JobOut
from generation.services import MAX_PROMPT_CHARS
from tenants.models import Tenant


class ConversationStartIn(StrictSerializer):
    model = serializers.ChoiceField(choices=list(MODELS), default="lite")


class TurnIn(StrictSerializer):
    # Kept as written: the history is what was said.
    prompt = serializers.CharField(max_length=MAX_PROMPT_CHARS, trim_whitespace=False)


class EstimateOut(serializers.Serializer):
    history_text_tokens = serializers.IntegerField()
    history_images = serializers.IntegerField()
    history_input_tokens = serializers.IntegerField(
        help_text="History text (a token per byte at most) + images × 1,120."
    )
    prompt_tokens = serializers.IntegerField()
    input_tokens = serializers.IntegerField(help_text="What the turn sends in all (estimated).")
    max_input_tokens = serializers.IntegerField()
    estimated_cost = serializers.CharField(help_text="Up to, USD, input at the input price.")


class TurnOut(serializers.Serializer):
    id = serializers.UUIDField()
    index = serializers.IntegerField()
    prompt = serializers.CharField()
    status = serializers.CharField()
    estimate = EstimateOut()
    images = ImageOut(many=True)
    job = JobOut()
    served_model = serializers.CharField()
    created_at = serializers.DateTimeField()
    links = serializers.DictField(child=serializers.CharField())


class ConversationOut(serializers.Serializer):
    id = serializers.UUIDField()
    image_id = serializers.UUIDField(help_text="The image the conversation started from.")
    model = serializers.CharField()
    aspect_ratio = serializers.CharField()
    turns = TurnOut(many=True)
    history_input_tokens = serializers.IntegerField()
    next_turn_estimate = EstimateOut(help_text="The next turn, before its prompt's own bytes.")
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()
    links = serializers.DictField(child=serializers.CharField())


def _url(conversation_id: Any) -> str:
    return reverse("api:conversation-detail", kwargs={"conversation_id": conversation_id})


def estimate_data(estimate: TurnEstimate) -> dict[str, Any]:
    return {
        "history_text_tokens": estimate.history.text_tokens,
        "history_images": estimate.history.images,
        "history_input_tokens": estimate.history.tokens,
        "prompt_tokens": estimate.prompt_tokens,
        "input_tokens": estimate.input_tokens,
        "max_input_tokens": hist.MAX_INPUT_TOKENS,
        "estimated_cost": usd(estimate.cost.billed),
    }


def turn_data(turn: ConversationTurn, job: Job) -> dict[str, Any]:
    job_body: dict[str, Any] = JobOut(job).data  # type: ignore[assignment]
    url = f"{_url(turn.conversation_id)}/turns/{turn.pk}"
    weight = hist.Weight(text_tokens=turn.history_text_tokens, images=turn.history_images)
    return {
        "id": str(turn.pk),
        "index": turn.index,
        "prompt": turn.prompt,
        "status": job.status,
        "estimate": {
            "history_text_tokens": weight.text_tokens,
            "history_images": weight.images,
            "history_input_tokens": weight.tokens,
            "prompt_tokens": len(turn.prompt.encode()),
            "input_tokens": turn.input_tokens,
            "max_input_tokens": hist.MAX_INPUT_TOKENS,
            "estimated_cost": usd(job.estimated_cost),
        },
        "images": job_body["images"],
        "job": job_body,
        "created_at": serializers.DateTimeField().to_representation(turn.created_at),
        "links": {
            "self": url,
            "conversation": _url(turn.conversation_id),
            "job": job_body["links"]["self"],
        },
        # Read by `Prefer: wait` (generation/streams.py), as on a job.
        "served_model": job_body["served_model"],
    }


def turn_body(tenant: Tenant, turn: ConversationTurn) -> dict[str, Any]:
    jobs = selectors.jobs_of(tenant, [turn])
    return turn_data(turn, jobs[turn.job_id])


def conversation_body(tenant: Tenant, conversation: Conversation) -> dict[str, Any]:
    turns = list(selectors.turns_of(conversation))
    jobs = selectors.jobs_of(tenant, turns)
    estimate = turn_estimate(conversation=conversation)
    dt = serializers.DateTimeField()
    url = _url(conversation.pk)
    return {
        "id": str(conversation.pk),
        "image_id": str(conversation.source_image_id),
        "model": conversation.tier,
        "aspect_ratio": conversation.aspect_ratio,
        "turns": [turn_data(turn, jobs[turn.job_id]) for turn in turns],
        "history_input_tokens": estimate.history.tokens,
        "next_turn_estimate": estimate_data(estimate),
        "created_at": dt.to_representation(conversation.created_at),
        "updated_at": dt.to_representation(conversation.updated_at),
        "links": {"self": url, "turns": f"{url}/turns"},
    }

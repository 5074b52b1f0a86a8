"""Tenant-scoped reads of edit conversations: every lookup names the tenant."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from config.errors import NotFound
from generation import selectors as job_selectors
from generation.models import Conversation, ConversationTurn, Image, Job
from tenants.models import Tenant


def conversations_for_tenant(tenant: Tenant) -> QuerySet[Conversation]:
    return Conversation.objects.filter(tenant=tenant).select_related("tenant__plan")


def conversation_get_for_tenant(tenant: Tenant, conversation_id: Any) -> Conversation:
    conversation = (
        conversations_for_tenant(tenant)
        .filter(pk=job_selectors._uuid(conversation_id, "conversation"))
        .first()
    )
    if conversation is None:
        raise NotFound("No such conversation.")
    return conversation


def turns_of(conversation: Conversation) -> QuerySet[ConversationTurn]:
    return conversation.turns.order_by("index")


def turn_get(conversation: Conversation, turn_id: Any) -> ConversationTurn:
    turn = turns_of(conversation).filter(pk=job_selectors._uuid(turn_id, "turn")).first()
    if turn is None:
        raise NotFound("No such turn in this conversation.")
    return turn


def turn_get_for_tenant(tenant: Tenant, turn_id: Any) -> ConversationTurn:
    turn = (
        ConversationTurn.objects.select_related("conversation")
        .filter(pk=job_selectors._uuid(turn_id, "turn"), conversation__tenant=tenant)
        .first()
    )
    if turn is None:
        raise NotFound("No such turn.")
    return turn


def jobs_of(tenant: Tenant, turns: list[ConversationTurn]) -> dict[Any, Job]:
    """The turns' jobs with their images, usage and cost, in one query (the job list's)."""
    ids = [turn.job_id for turn in turns]
    return {job.pk: job for job in job_selectors.jobs_for_tenant(tenant).filter(pk__in=ids)}


def conversations_of_image(tenant: Tenant, image_id: Any) -> QuerySet[Conversation]:
    return conversations_for_tenant(tenant).filter(source_image_id=image_id)


def conversation_for_image(tenant: Tenant, image: Image) -> Conversation | None:
    """The conversation an image belongs to: the one a turn of which made it, else the
    latest started from it."""
    if image.job_id is not None:
        turn = (
            ConversationTurn.objects.select_related("conversation__tenant__plan")
            .filter(job_id=image.job_id, conversation__tenant=tenant)
            .first()
        )
        if turn is not None:
            return turn.conversation
    return conversations_of_image(tenant, image.pk).order_by("-created_at").first()

"""The image page's "Edit conversation" panel: server-rendered turns, a prompt box and
the next turn's estimate; starting a conversation and adding a turn are plain forms. A
running turn is followed live in the page (static/dashboard/app.js, as edits are)."""

from __future__ import annotations

import uuid
from typing import Any

from django.contrib import messages
from django.contrib.auth.models import User
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.views.decorators.http import require_POST

from config.errors import BunchError
from core.catalog import MODELS
from core.money import show_unit
from generation import selectors as job_selectors
from generation.conversations import history as hist
from generation.conversations import selectors, services
from generation.links import signed_image_url
from generation.models import Image
from tenants.models import Membership, Tenant
from tenants.roles import Action
from tenants.views import tenant_page


def conversation_panel(tenant: Tenant, image: Image) -> dict[str, Any] | None:
    """What the panel shows for `image`: its conversation's turns, newest last, and what
    the next turn would send and cost; None when the image has no conversation yet."""
    conversation = selectors.conversation_for_image(tenant, image)
    if conversation is None:
        return None
    turns = list(selectors.turns_of(conversation))
    jobs = selectors.jobs_of(tenant, turns)
    rows: list[dict[str, Any]] = []
    for turn in turns:
        job = jobs[turn.job_id]
        made = list(job.images.all())
        rows.append(
            {
                "turn": turn,
                "job": job,
                "image": made[0] if made else None,
                "thumb": signed_image_url(made[0].pk, "thumbnail") if made else None,
                "input_tokens": turn.input_tokens,
                "cost": show_unit(job.estimated_cost),
            }
        )
    estimate = services.turn_estimate(conversation=conversation)
    running = any(not jobs[turn.job_id].is_finished for turn in turns)
    return {
        "conversation": conversation,
        "model": MODELS[conversation.tier].display_name,
        "rows": rows,
        "running": running,
        "next_tokens": estimate.input_tokens,
        # The source image on the first turn, the history's images after.
        "next_images": estimate.history.images + estimate.input_images,
        "next_cost": show_unit(estimate.cost.billed),
        "max_tokens": hist.MAX_INPUT_TOKENS,
        "full": not estimate.within_limit,
    }


def _user(request: HttpRequest) -> User | None:
    return request.user if isinstance(request.user, User) else None


def _back(image_id: Any) -> HttpResponse:
    return redirect(reverse("dashboard:image", kwargs={"image_id": image_id}) + "#conversation")


@tenant_page(action=Action.GENERATE)
@require_POST
def conversation_start(request: HttpRequest, membership: Membership, image_id: str) -> HttpResponse:
    image = job_selectors.image_get_for_tenant(membership.tenant, image_id)
    tier = request.POST.get("model", "lite")
    try:
        services.conversation_start(
            tenant=membership.tenant, image=image, tier=tier, user=_user(request)
        )
    except BunchError as error:
        messages.error(request, error.message)
    return _back(image.pk)


@tenant_page(action=Action.GENERATE)
@require_POST
def conversation_turn(
    request: HttpRequest, membership: Membership, conversation_id: str
) -> HttpResponse:
    conversation = selectors.conversation_get_for_tenant(membership.tenant, conversation_id)
    # Back to the page the turn was sent from (one of the tenant's images), else the source.
    back: Any = _uuid_or_none(request.POST.get("image"))
    if back is None or not Image.objects.filter(tenant=membership.tenant, pk=back).exists():
        back = conversation.source_image_id
    try:
        services.conversation_turn_submit(
            tenant=membership.tenant,
            conversation=conversation,
            prompt=request.POST.get("prompt", ""),
            user=_user(request),
            interactive=True,
        )
    except BunchError as error:
        messages.error(request, error.message)
    return _back(back)


def _uuid_or_none(value: Any) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None

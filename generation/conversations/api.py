"""The edit-conversation REST API: translate HTTP to services and back, nothing more."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.pagination import StrictCursorPagination
from config.schema import ErrorOut
from generation import selectors as job_selectors
from generation.api import _prefer_wait, idempotent_create
from generation.conversations import selectors, services
from generation.conversations.serializers import (
    ConversationOut,
    ConversationStartIn,
    TurnIn,
    TurnOut,
    conversation_body,
    turn_body,
    turn_data,
)
from generation.streams import PendingWait, job_answer
from tenants.authentication import request_actor, request_tenant
from tenants.roles import Action

IDEMPOTENCY = OpenApiParameter("Idempotency-Key", str, OpenApiParameter.HEADER)
PREFER = OpenApiParameter("Prefer", str, OpenApiParameter.HEADER, description="wait=N (≤ 60)")


class ConversationPagination(StrictCursorPagination):
    page_size = 20
    ordering = ("-created_at", "-id")  # type: ignore[assignment]


class TurnPagination(StrictCursorPagination):
    ordering = ("index",)  # type: ignore[assignment]


def _idempotent(
    request: Request,
    validated: dict[str, Any],
    create: Callable[[], Any],
    answer: Callable[[Any, bool], Response],
) -> Response:
    """`create()` under the request's Idempotency-Key, as the jobs API does; the first
    answer and a replay are both `answer(id, replayed)`: the resource as it is now."""
    return idempotent_create(
        request,
        validated,
        create=create,
        answer=lambda created: ({"id": str(created.pk)}, answer(created.pk, False)),
        replay=lambda resource_id: answer(resource_id, True),
    )


class ConversationStartView(APIView):
    required_action = Action.GENERATE

    @extend_schema(
        request=ConversationStartIn,
        responses={201: ConversationOut, 402: ErrorOut},
        summary="Start an edit conversation about this image",
        parameters=[IDEMPOTENCY],
    )
    def post(self, request: Request, image_id: str) -> Response:
        tenant = request_tenant(request)
        image = job_selectors.image_get_for_tenant(tenant, image_id)
        data = ConversationStartIn(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data

        def answer(conversation_id: Any, replayed: bool) -> Response:
            conversation = selectors.conversation_get_for_tenant(tenant, conversation_id)
            body = conversation_body(tenant, conversation)
            headers = {"Location": body["links"]["self"]}
            if replayed:
                headers["Idempotent-Replayed"] = "true"
            return Response(body, status=status.HTTP_201_CREATED, headers=headers)

        return _idempotent(
            request,
            v,
            lambda: services.conversation_start(
                tenant=tenant, image=image, tier=v["model"], **request_actor(request)
            ),
            answer,
        )


class ConversationListView(APIView):
    pagination_class = ConversationPagination

    @extend_schema(
        responses=ConversationOut(many=True),
        operation_id="v1_conversations_list",
        summary="List edit conversations, newest first, with their turns",
    )
    def get(self, request: Request) -> Response:
        tenant = request_tenant(request)
        paginator = ConversationPagination()
        page = paginator.paginate_queryset(
            selectors.conversations_for_tenant(tenant), request, view=self
        )
        rows = [conversation_body(tenant, c) for c in page or []]
        return paginator.get_paginated_response(rows)


class ConversationDetailView(APIView):
    @extend_schema(
        responses=ConversationOut,
        summary="A conversation: its turns with their images, and the next turn's estimate",
    )
    def get(self, request: Request, conversation_id: str) -> Response:
        tenant = request_tenant(request)
        conversation = selectors.conversation_get_for_tenant(tenant, conversation_id)
        return Response(conversation_body(tenant, conversation))


def _turn_answer(request: Request, turn_id: Any, replayed: bool) -> Response:
    """The turn as it is now: 202 while its job runs, 200 once finished; `Prefer: wait=N`
    holds the answer up to N s (the async view around this one waits)."""
    tenant = request_tenant(request)
    turn = selectors.turn_get_for_tenant(tenant, turn_id)
    body = turn_body(tenant, turn)
    wait = _prefer_wait(request)
    # A turn answers as its job does (status, Location, the served model after a wait).
    response = job_answer(body, waited=bool(wait))
    if wait and response.status_code == status.HTTP_202_ACCEPTED:
        pending = PendingWait(
            tenant=tenant,
            job_id=turn.job_id,
            seconds=wait,
            render=functools.partial(turn_body, tenant, turn),
        )
        request._request.bunch_wait = pending  # type: ignore[attr-defined]
        response.bunch_wait = pending  # type: ignore[attr-defined]  # (config.asgi_front)
    if wait:
        response["Preference-Applied"] = f"wait={wait}"
    if replayed:
        response["Idempotent-Replayed"] = "true"
    return response


class ConversationTurnListView(APIView):
    pagination_class = TurnPagination
    required_action = {"GET": Action.READ, "POST": Action.GENERATE}

    @extend_schema(
        request=TurnIn,
        responses={200: TurnOut, 202: TurnOut, 400: ErrorOut, 402: ErrorOut, 409: ErrorOut},
        summary="Add a turn: a job that sends the whole history with this prompt",
        description="Refused with 400 `history_too_long` before any call when the history "
        "and the prompt would pass the model's 65,536 input tokens, and with 409 "
        "`turn_in_progress` while the previous turn runs.",
        parameters=[IDEMPOTENCY, PREFER],
    )
    def post(self, request: Request, conversation_id: str) -> Response:
        tenant = request_tenant(request)
        conversation = selectors.conversation_get_for_tenant(tenant, conversation_id)
        data = TurnIn(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        return _idempotent(
            request,
            v,
            lambda: services.conversation_turn_submit(
                tenant=tenant,
                conversation=conversation,
                prompt=v["prompt"],
                interactive=_prefer_wait(request) > 0,
                **request_actor(request),
            ),
            lambda turn_id, replayed: _turn_answer(request, turn_id, replayed),
        )

    @extend_schema(
        responses=TurnOut(many=True),
        operation_id="v1_conversations_turns_list",
        summary="A conversation's turns, first first",
    )
    def get(self, request: Request, conversation_id: str) -> Response:
        tenant = request_tenant(request)
        conversation = selectors.conversation_get_for_tenant(tenant, conversation_id)
        paginator = TurnPagination()
        page = (
            paginator.paginate_queryset(selectors.turns_of(conversation), request, view=self) or []
        )
        jobs = selectors.jobs_of(tenant, page)
        return paginator.get_paginated_response([turn_data(t, jobs[t.job_id]) for t in page])


class ConversationTurnDetailView(APIView):
    @extend_schema(responses=TurnOut, summary="One turn, its job and its image")
    def get(self, request: Request, conversation_id: str, turn_id: str) -> Response:
        tenant = request_tenant(request)
        conversation = selectors.conversation_get_for_tenant(tenant, conversation_id)
        return Response(turn_body(tenant, selectors.turn_get(conversation, turn_id)))

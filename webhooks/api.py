"""`/api/v1/webhook-endpoints…`: translate HTTP to the services in services.services."""

from __future__ import annotations

import datetime as dt
import uuid

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.generics import GenericAPIView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.pagination import StrictCursorPagination
from tenants.authentication import request_tenant
from tenants.roles import Action
from webhooks import services
from webhooks.models import WebhookDelivery, WebhookEndpoint
from webhooks.selectors import (
    deliveries_for_endpoint,
    delivery_get_for_endpoint,
    endpoint_get_for_tenant,
    endpoints_for_tenant,
)
from webhooks.serializers import (
    RotateSecretIn,
    WebhookDeliveryOut,
    WebhookEndpointCreateIn,
    WebhookEndpointOut,
    WebhookEndpointUpdateIn,
    WebhookEndpointWithSecretOut,
)

TAGS = ["webhooks"]


class NewestFirst(StrictCursorPagination):
    pass


class DeliveriesNewestFirst(NewestFirst):
    # The order of the `delivery_endpoint_created` index: a page is read off it, and
    # deliveries made in the same instant keep one order from page to page.
    ordering = ("-created_at", "-id")  # type: ignore[assignment]


class _ListView(GenericAPIView):
    """Cursor-paginated, newest first; drf-spectacular documents the page envelope."""

    pagination_class = NewestFirst

    def _page(self, queryset: QuerySet) -> Response:
        page = self.paginate_queryset(queryset)
        return self.get_paginated_response(self.get_serializer(page, many=True).data)


class WebhookEndpointListView(_ListView):
    required_action = Action.WEBHOOKS_MANAGE
    serializer_class = WebhookEndpointOut

    @extend_schema(
        tags=TAGS,
        summary="List webhook endpoints, newest first",
        responses=WebhookEndpointOut(many=True),
    )
    def get(self, request: Request) -> Response:
        return self._page(endpoints_for_tenant(request_tenant(request)))

    @extend_schema(
        tags=TAGS,
        summary="Add a webhook endpoint; the response holds its secret, shown only this once",
        request=WebhookEndpointCreateIn,
        responses={201: WebhookEndpointWithSecretOut},
    )
    def post(self, request: Request) -> Response:
        data = WebhookEndpointCreateIn(data=request.data)
        data.is_valid(raise_exception=True)
        endpoint, secret = services.endpoint_create(
            tenant=request_tenant(request),
            url=data.validated_data["url"],
            event_types=data.validated_data.get("event_types", []),
            description=data.validated_data.get("description", ""),
        )
        body = WebhookEndpointWithSecretOut(endpoint).data | {"secret": secret}
        return Response(body, status=status.HTTP_201_CREATED)


class WebhookEndpointDetailView(APIView):
    required_action = Action.WEBHOOKS_MANAGE

    def _endpoint(self, request: Request, endpoint_id: uuid.UUID) -> WebhookEndpoint:
        return endpoint_get_for_tenant(request_tenant(request), endpoint_id)

    @extend_schema(tags=TAGS, summary="One webhook endpoint", responses=WebhookEndpointOut)
    def get(self, request: Request, endpoint_id: uuid.UUID) -> Response:
        return Response(WebhookEndpointOut(self._endpoint(request, endpoint_id)).data)

    @extend_schema(
        tags=TAGS,
        summary="Change a webhook endpoint's URL, description, events or enabled flag",
        request=WebhookEndpointUpdateIn,
        responses=WebhookEndpointOut,
    )
    def patch(self, request: Request, endpoint_id: uuid.UUID) -> Response:
        endpoint = self._endpoint(request, endpoint_id)
        data = WebhookEndpointUpdateIn(data=request.data)
        data.is_valid(raise_exception=True)
        endpoint = services.endpoint_update(endpoint=endpoint, **data.validated_data)
        return Response(WebhookEndpointOut(endpoint).data)

    @extend_schema(
        tags=TAGS,
        summary="Delete a webhook endpoint and its delivery log",
        responses={204: OpenApiResponse(description="Deleted.")},
    )
    def delete(self, request: Request, endpoint_id: uuid.UUID) -> Response:
        services.endpoint_delete(endpoint=self._endpoint(request, endpoint_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class WebhookEndpointRotateSecretView(APIView):
    required_action = Action.WEBHOOKS_MANAGE

    @extend_schema(
        tags=TAGS,
        summary="Replace the endpoint's secret; the old one keeps signing for an overlap",
        description=(
            "Returns the new secret, shown only this once. Until `previous_secret_expires_at` "
            "(24 h by default) every delivery carries two signatures in `webhook-signature`, "
            "one per secret, so a receiver verifies with either while it switches."
        ),
        request=RotateSecretIn,
        responses=WebhookEndpointWithSecretOut,
    )
    def post(self, request: Request, endpoint_id: uuid.UUID) -> Response:
        endpoint = endpoint_get_for_tenant(request_tenant(request), endpoint_id)
        data = RotateSecretIn(data=request.data)
        data.is_valid(raise_exception=True)
        seconds = data.validated_data.get("overlap_seconds")
        overlap = dt.timedelta(seconds=seconds) if seconds is not None else None
        secret = services.endpoint_rotate_secret(endpoint=endpoint, overlap=overlap)
        return Response(WebhookEndpointWithSecretOut(endpoint).data | {"secret": secret})


class WebhookDeliveryListView(_ListView):
    required_action = Action.WEBHOOKS_MANAGE
    serializer_class = WebhookDeliveryOut
    pagination_class = DeliveriesNewestFirst

    @extend_schema(
        tags=TAGS,
        summary="The endpoint's delivery log, newest first",
        responses=WebhookDeliveryOut(many=True),
    )
    def get(self, request: Request, endpoint_id: uuid.UUID) -> Response:
        endpoint = endpoint_get_for_tenant(request_tenant(request), endpoint_id)
        return self._page(deliveries_for_endpoint(endpoint))


class WebhookDeliveryRedeliverView(APIView):
    required_action = Action.WEBHOOKS_MANAGE

    @extend_schema(
        tags=TAGS,
        summary="Send a delivery again now, whatever became of earlier attempts",
        request=None,
        responses={202: WebhookDeliveryOut},
    )
    def post(self, request: Request, endpoint_id: uuid.UUID, delivery_id: uuid.UUID) -> Response:
        endpoint = endpoint_get_for_tenant(request_tenant(request), endpoint_id)
        delivery: WebhookDelivery = delivery_get_for_endpoint(endpoint, delivery_id)
        delivery = services.delivery_redeliver(delivery=delivery)
        return Response(WebhookDeliveryOut(delivery).data, status=status.HTTP_202_ACCEPTED)

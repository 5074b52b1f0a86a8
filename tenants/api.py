from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.pagination import StrictCursorPagination
from tenants.authentication import request_actor, request_tenant
from tenants.fallback import policy_parse
from tenants.models import ApiKey
from tenants.roles import Action
from tenants.selectors import api_key_get_for_tenant, api_keys_for_tenant, quota_snapshot
from tenants.serializers import ApiKeyIn, ApiKeyOut, ApiKeyWithSecretOut, MeOut
from tenants.services import api_key_create, api_key_revoke, tenant_fallback_set


class MeView(APIView):
    required_action = Action.READ

    @extend_schema(responses=MeOut, summary="The tenant behind this key, its plan and quota")
    def get(self, request: Request) -> Response:
        tenant = request_tenant(request)
        api_key = request.auth if isinstance(request.auth, ApiKey) else None
        data = {
            "tenant": tenant,
            "quota": quota_snapshot(tenant),
            "scopes": api_key.scopes if api_key else list(ApiKey.SCOPES),
            "api_key": f"{api_key.prefix}…" if api_key else None,
        }
        return Response(MeOut(data).data)


class ApiKeyPagination(StrictCursorPagination):
    pass


class ApiKeyListView(APIView):
    # Owners and admins in the dashboard, or a key with `keys:manage` (tenants/roles.py).
    required_action = Action.API_KEYS_MANAGE
    pagination_class = ApiKeyPagination

    @extend_schema(
        tags=["api-keys"],
        summary="List the account's API keys, newest first (revoked ones too)",
        responses=ApiKeyOut(many=True),
    )
    def get(self, request: Request) -> Response:
        paginator = ApiKeyPagination()
        rows = api_keys_for_tenant(request_tenant(request))
        page = paginator.paginate_queryset(rows, request, view=self)
        return paginator.get_paginated_response(ApiKeyOut(page, many=True).data)

    @extend_schema(
        tags=["api-keys"],
        summary="Create an API key; the answer holds the key, shown only this once",
        request=ApiKeyIn,
        responses={201: ApiKeyWithSecretOut},
    )
    def post(self, request: Request) -> Response:
        data = ApiKeyIn(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        actor = request_actor(request)
        creator = actor.get("user") or getattr(actor.get("api_key"), "created_by", None)
        issued = api_key_create(
            tenant=request_tenant(request),
            name=v["name"],
            scopes=v.get("scopes"),
            created_by=creator,
            expires_at=v.get("expires_at"),
        )
        body = ApiKeyOut(issued.api_key).data | {"key": issued.plaintext}
        return Response(body, status=status.HTTP_201_CREATED)


class ApiKeyDetailView(APIView):
    # Owners and admins in the dashboard, or a key with `keys:manage` (tenants/roles.py).
    required_action = Action.API_KEYS_MANAGE

    @extend_schema(tags=["api-keys"], summary="One API key", responses=ApiKeyOut)
    def get(self, request: Request, key_id: str) -> Response:
        return Response(ApiKeyOut(api_key_get_for_tenant(request_tenant(request), key_id)).data)

    @extend_schema(
        tags=["api-keys"],
        summary="Revoke an API key (at once, in every web process within 2 s)",
        responses={204: None},
    )
    def delete(self, request: Request, key_id: str) -> Response:
        api_key_revoke(api_key=api_key_get_for_tenant(request_tenant(request), key_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class FallbackSettingsView(APIView):
    """The tenant's fallback policy: `PUT` a policy, or `null` to have none."""

    # Falling back spends more per image: owners and admins, or a key with `billing`.
    required_action = {"GET": Action.READ, "PUT": Action.BILLING_MANAGE}

    @extend_schema(
        summary="The tenant's fallback policy (null: none)", responses=OpenApiTypes.OBJECT
    )
    def get(self, request: Request) -> Response:
        return Response({"fallback": request_tenant(request).fallback_policy})

    @extend_schema(
        summary="Set the tenant's fallback policy; null removes it",
        request=OpenApiTypes.OBJECT,
        responses=OpenApiTypes.OBJECT,
    )
    def put(self, request: Request) -> Response:
        tenant = request_tenant(request)
        raw = request.data
        if isinstance(raw, dict) and "fallback" in raw:  # {"fallback": null} removes it
            raw = raw["fallback"]
        policy = None if raw is None else policy_parse(raw, plan=tenant.plan)
        tenant = tenant_fallback_set(tenant=tenant, policy=policy)
        return Response({"fallback": tenant.fallback_policy})

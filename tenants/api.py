from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from tenants.authentication import request_tenant
from tenants.models import ApiKey
from tenants.roles import Action
from tenants.selectors import quota_snapshot
from tenants.serializers import MeOut


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

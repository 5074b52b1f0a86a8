"""OpenAPI descriptions of the authentication schemes (drf-spectacular)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class ApiKeyScheme(OpenApiAuthenticationExtension):
    target_class = "tenants.authentication.ApiKeyAuthentication"
    name = "ApiKey"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "bk_live_…",
            "description": "An API key from the dashboard: `Authorization: Bearer bk_live_…`.",
        }


class DashboardSessionScheme(OpenApiAuthenticationExtension):
    target_class = "tenants.authentication.DashboardSessionAuthentication"
    name = "DashboardSession"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {"type": "apiKey", "in": "cookie", "name": "sessionid"}

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from audit.models import AuditEvent


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    """Read-only: entries are appended by the app and never changed or deleted."""

    list_display = ("created_at", "action", "tenant", "actor_label", "ip", "object_label")
    list_filter = ("action",)
    search_fields = ("actor_label", "object_label", "username", "ip", "object_id")
    date_hierarchy = "created_at"
    list_select_related = ("tenant",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

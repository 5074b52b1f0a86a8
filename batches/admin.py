from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from batches.models import Batch, BatchDraft, PromptTemplate, ProviderBatch
from tenants.admin_filters import TenantFilter


@admin.register(Batch)
class BatchAdmin(admin.ModelAdmin):
    list_display = ["id", "tenant", "name", "mode", "status", "total_items", "created_at"]
    list_filter = ["status", "mode", TenantFilter, "created_at"]
    list_select_related = ["tenant"]
    search_fields = ["id", "name", "tenant__slug"]
    readonly_fields = [f.name for f in Batch._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(ProviderBatch)
class ProviderBatchAdmin(admin.ModelAdmin):
    list_display = ["name", "tenant", "tier", "state", "input_mode", "request_count", "polled_at"]
    list_filter = ["state", "tier", "input_mode"]
    list_select_related = ["tenant"]
    search_fields = ["name", "tenant__slug"]
    readonly_fields = [f.name for f in ProviderBatch._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(PromptTemplate)
class PromptTemplateAdmin(admin.ModelAdmin):
    list_display = ["name", "tenant", "kind", "model", "updated_at"]
    list_filter = ["kind", TenantFilter]
    list_select_related = ["tenant"]
    search_fields = ["name", "text", "tenant__slug"]


@admin.register(BatchDraft)
class BatchDraftAdmin(admin.ModelAdmin):
    """Read-only: drafts are made and submitted in the dashboard; kept seven days."""

    list_display = ["id", "tenant", "source", "template", "created_at", "submitted_at", "batch"]
    list_filter = ["source", TenantFilter]
    list_select_related = ["tenant", "template", "batch"]
    readonly_fields = [f.name for f in BatchDraft._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

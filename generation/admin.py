from __future__ import annotations

import uuid
from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from config.paging import EstimatedCountPaginator, search_by_id_or_text
from core.catalog import MODELS
from generation import services
from generation.models import Image, Job, Provenance


class TierFilter(admin.SimpleListFilter):
    """The catalog's tiers; Django's default filter for a plain column reads the distinct
    values of every row."""

    title = "tier"
    parameter_name = "tier"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(tier, spec.display_name) for tier, spec in MODELS.items()]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        return queryset.filter(tier=self.value()) if self.value() else queryset


class ImageInline(admin.TabularInline):
    model = Image
    fk_name = "job"
    extra = 0
    can_delete = False
    fields = ("index", "width", "height", "mime_type", "size_bytes", "sha256", "created_at")
    readonly_fields = fields


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "tenant",
        "kind",
        "tier",
        "mode",
        "status",
        "count",
        "attempts",
        "error_code",
        "created_at",
    ]
    list_filter = ["status", TierFilter, "mode", "kind", "tenant", "created_at"]
    list_select_related = ["tenant"]
    # Millions of rows: no COUNT of the table, and no date hierarchy (its day links
    # read the distinct days of every row); the created_at filter narrows by date.
    paginator = EstimatedCountPaginator
    show_full_result_count = False
    search_fields = ["prompt"]
    search_help_text = "A job id, or words of the prompt."
    readonly_fields = [f.name for f in Job._meta.fields]
    inlines = [ImageInline]
    actions = ["retry_failed", "cancel"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Job], search_term: str
    ) -> tuple[QuerySet[Job], bool]:
        return search_by_id_or_text(
            queryset, search_term, id_of=uuid.UUID, text_field="prompt"
        ), False

    @admin.action(description="Retry selected failed jobs (as new jobs)")
    def retry_failed(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        retried = 0
        for job in queryset.filter(status=Job.Status.FAILED).select_related("tenant__plan"):
            try:
                services.job_retry(job=job)
                retried += 1
            except services.BunchError as exc:
                self.message_user(request, f"{job.pk}: {exc.message}", messages.WARNING)
        self.message_user(request, f"Retried {retried} job(s).", messages.SUCCESS)

    @admin.action(description="Cancel selected jobs")
    def cancel(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        canceled = 0
        for job in queryset.exclude(status__in=Job.FINISHED):
            try:
                services.job_cancel(job=job)
                canceled += 1
            except services.BunchError as exc:
                self.message_user(request, f"{job.pk}: {exc.message}", messages.WARNING)
        self.message_user(request, f"Cancel requested for {canceled} job(s).", messages.SUCCESS)


class ProvenanceInline(admin.StackedInline):
    """What the image's Content Credentials said when it was stored (read-only)."""

    model = Provenance
    extra = 0
    can_delete = False
    readonly_fields = [f.name for f in Provenance._meta.fields if f.name != "image"]
    fields = tuple(readonly_fields)

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(Image)
class ImageAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "tenant",
        "job",
        "index",
        "source",
        "width",
        "height",
        "provenance_state",
        "created_at",
    ]
    list_filter = ["source", "provenance__state", "tenant", "created_at"]
    list_select_related = ["tenant", "job", "provenance"]
    paginator = EstimatedCountPaginator
    show_full_result_count = False
    search_fields = ["job__prompt"]
    search_help_text = "An image id, or words of its job's prompt."
    readonly_fields = [f.name for f in Image._meta.fields]
    inlines = [ProvenanceInline]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Image]:
        return super().get_queryset(request).defer("provenance__manifest")

    @admin.display(description="Content Credentials", ordering="provenance__state")
    def provenance_state(self, image: Image) -> str:
        provenance = getattr(image, "provenance", None)
        return provenance.state if provenance is not None else "not checked"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Image], search_term: str
    ) -> tuple[QuerySet[Image], bool]:
        return search_by_id_or_text(
            queryset, search_term, id_of=uuid.UUID, text_field="job__prompt"
        ), False

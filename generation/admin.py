from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from django.contrib import admin, messages
from django.db.models import Count, IntegerField, OuterRef, QuerySet, Subquery
from django.http import HttpRequest
from django.utils import timezone

from config.admin_lists import ListAtScaleMixin
from config.paging import EstimatedCountPaginator, search_by_id_or_text
from core.catalog import MODELS
from generation import budget, services
from generation.models import (
    Conversation,
    ConversationTurn,
    Image,
    Job,
    Provenance,
    ProviderModel,
    TenantShare,
)
from tenants.admin_filters import TenantFilter
from tenants.capacity import reservations_total


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
class JobAdmin(ListAtScaleMixin, admin.ModelAdmin):
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
    list_filter = ["status", TierFilter, "mode", "kind", TenantFilter, "created_at"]
    list_select_related = ["tenant"]
    # Millions of rows: no COUNT of the table, and no date hierarchy (its day links
    # read the distinct days of every row); the created_at filter narrows by date.
    paginator = EstimatedCountPaginator
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER  # "Show counts" would count every row per choice
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
class ImageAdmin(ListAtScaleMixin, admin.ModelAdmin):
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
    list_filter = ["source", "provenance__state", TenantFilter, "created_at"]
    list_select_related = ["tenant", "job", "provenance"]
    paginator = EstimatedCountPaginator
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER  # "Show counts" would count every row per choice
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


# Edit conversations: read-only (their history is the model's, never edited) -------------


class ConversationTurnInline(admin.TabularInline):
    model = ConversationTurn
    extra = 0
    can_delete = False
    fields = ("index", "prompt", "job", "input_tokens", "history_images", "created_at")
    readonly_fields = fields


@admin.register(Conversation)
class ConversationAdmin(admin.ModelAdmin):
    list_display = ["id", "tenant", "source_image", "tier", "created_at", "updated_at"]
    list_filter = ["tier", TenantFilter]
    list_select_related = ["tenant", "source_image"]
    paginator = EstimatedCountPaginator
    show_full_result_count = False
    readonly_fields = [f.name for f in Conversation._meta.fields]
    inlines = [ConversationTurnInline]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


# The scheduler: each tenant's share, and the provider budget in use ----------------------


def _count_of(rows: QuerySet[Any]) -> Subquery:
    return Subquery(
        rows.order_by().values("tenant_id").annotate(n=Count("pk")).values("n")[:1],
        output_field=IntegerField(),
    )


@admin.register(TenantShare)
class TenantShareAdmin(admin.ModelAdmin):
    """Tenants the scheduler has served: their work now and their place in virtual time."""

    list_display = [
        "tenant",
        "plan",
        "weight",
        "reservation",
        "queued",
        "running",
        "share_now",
        "finish",
    ]
    list_select_related = ["tenant__plan"]
    readonly_fields = ["tenant", "start", "finish"]
    ordering = ["-finish"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[TenantShare]:
        jobs = Job.objects.filter(tenant=OuterRef("tenant"))
        return (
            super()
            .get_queryset(request)
            .annotate(
                queued_n=_count_of(jobs.filter(status=Job.Status.QUEUED)),
                running_n=_count_of(jobs.filter(status=Job.Status.RUNNING)),
            )
        )

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> Any:
        self._running_total = Job.objects.filter(status=Job.Status.RUNNING).count()
        return super().changelist_view(request, extra_context)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.display(description="Plan")
    def plan(self, share: TenantShare) -> str:
        return share.tenant.plan.name

    @admin.display(description="Weight")
    def weight(self, share: TenantShare) -> int:
        return share.tenant.plan.weight

    @admin.display(description="Reserved calls")
    def reservation(self, share: TenantShare) -> int:
        return share.tenant.plan.reserved_concurrency

    @admin.display(description="Queued", ordering="queued_n")
    def queued(self, share: TenantShare) -> int:
        return getattr(share, "queued_n", None) or 0

    @admin.display(description="Running", ordering="running_n")
    def running(self, share: TenantShare) -> int:
        return getattr(share, "running_n", None) or 0

    @admin.display(description="Share of running jobs")
    def share_now(self, share: TenantShare) -> str:
        total = getattr(self, "_running_total", 0)
        return f"{100 * self.running(share) / total:.0f} %" if total else "–"


@admin.register(ProviderModel)
class ProviderModelAdmin(admin.ModelAdmin):
    """The provider budget every worker shares, per model (generation/budget.py)."""

    list_display = ["model", "in_flight", "calls_last_minute", "reserved", "cooldown"]
    readonly_fields = ["model", "cooldown"]
    fields = ["model", "cooldown"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.display(description="Calls in flight / budget")
    def in_flight(self, row: ProviderModel) -> str:
        used = budget.budget_in_use().get(row.model, 0)
        limit = settings.GEMINI_MAX_IN_FLIGHT
        return f"{used} / {limit}" if limit else f"{used} (no limit set)"

    @admin.display(description="Calls started in the last minute / RPM")
    def calls_last_minute(self, row: ProviderModel) -> str:
        started = budget.calls_last_minute(row.model)
        return f"{started} / {settings.GEMINI_RPM or 'no limit'}"

    @admin.display(description="Cooling down until")
    def cooldown(self, row: ProviderModel) -> str:
        until = budget.cooldown_until(row.model)  # (the budget's backend: the row or Redis)
        if until is None or until <= timezone.now():
            return "–"
        return f"{timezone.localtime(until):%Y-%m-%d %H:%M:%S}"

    @admin.display(description="Reserved for tenants")
    def reserved(self, row: ProviderModel) -> int:
        return reservations_total()

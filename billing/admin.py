from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from billing.models import MeterLine, MeterSwitch, Price, StripeWebhookEvent, TokenMeter, UsageEvent
from billing.services import usage_resend
from config.admin_lists import ListAtScaleMixin
from config.paging import EstimatedCountPaginator, search_by_id_or_text
from core.catalog import MODELS
from tenants.admin_filters import TenantFilter


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows written by the system: operators look, they don't edit."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Price)
class PriceAdmin(admin.ModelAdmin):
    list_display = [
        "model",
        "tier",
        "mode",
        "input_per_million",
        "text_output_per_million",
        "image_output_per_million",
    ]
    list_filter = ["tier", "mode"]


class ModelFilter(admin.SimpleListFilter):
    """The catalog's models; Django's default filter for a plain column reads the distinct
    values of every row."""

    title = "model"
    parameter_name = "model"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(spec.model_id, spec.display_name) for spec in MODELS.values()]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        return queryset.filter(model=self.value()) if self.value() else queryset


@admin.register(UsageEvent)
class UsageEventAdmin(ListAtScaleMixin, ReadOnlyAdmin):
    list_display = [
        "id",
        "tenant",
        "model",
        "mode",
        "output_image_tokens",
        "provider_cost",
        "billed",
        "stripe_state",
        "stripe_attempts",
        "occurred_at",
    ]
    list_filter = ["stripe_state", ModelFilter, "mode", TenantFilter, "occurred_at"]
    list_select_related = ["tenant"]
    # Millions of rows: no COUNT of the table, no date hierarchy (see JobAdmin).
    paginator = EstimatedCountPaginator
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER  # "Show counts" would count every row per choice
    search_fields = ["stripe_last_error"]
    search_help_text = "A usage event id, or words of the Stripe error of a row not yet sent."
    readonly_fields = [f.name for f in UsageEvent._meta.fields]
    actions = ["resend_to_stripe"]

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[UsageEvent], search_term: str
    ) -> tuple[QuerySet[UsageEvent], bool]:
        # Sent rows have no error to search for; the Stripe state index finds the others.
        # (No search at all lists every row.)
        unsent = [UsageEvent.StripeState.PENDING, UsageEvent.StripeState.FAILED]
        term = search_term.strip()
        if term and not term.isdigit():
            queryset = queryset.filter(stripe_state__in=unsent)
        return search_by_id_or_text(
            queryset, search_term, id_of=int, text_field="stripe_last_error"
        ), False

    @admin.action(description="Resend selected failed rows to Stripe")
    def resend_to_stripe(self, request: HttpRequest, queryset: QuerySet[UsageEvent]) -> None:
        count = usage_resend(events=queryset)
        self.message_user(
            request, f"{count} failed row(s) queued for the next sync.", messages.SUCCESS
        )


@admin.register(StripeWebhookEvent)
class StripeWebhookEventAdmin(ReadOnlyAdmin):
    list_display = ["event_id", "event_type", "received_at"]
    list_filter = ["event_type"]
    search_fields = ["event_id"]
    readonly_fields = [f.name for f in StripeWebhookEvent._meta.fields]


@admin.register(MeterLine)
class MeterLineAdmin(ReadOnlyAdmin):
    list_display = ["line", "images_meter_id", "amount_meter_id", "updated_at"]
    readonly_fields = [f.name for f in MeterLine._meta.fields]


@admin.register(TokenMeter)
class TokenMeterAdmin(ReadOnlyAdmin):
    list_display = ["event_name", "kind", "tier", "mode", "unit_cents", "price_id", "created_at"]
    list_filter = ["kind", "tier", "mode"]
    readonly_fields = [f.name for f in TokenMeter._meta.fields]


@admin.register(MeterSwitch)
class MeterSwitchAdmin(ReadOnlyAdmin):
    list_display = ["token_meters_from", "recorded_at"]
    readonly_fields = [f.name for f in MeterSwitch._meta.fields]

from __future__ import annotations

import copy
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import OuterRef, QuerySet, Subquery
from django.http import HttpRequest
from django.utils import timezone

from core.money import from_nanos, show_total
from tenants.admin_filters import TenantFilter
from tenants.capacity import reservations_check
from tenants.models import ApiKey, Invitation, Membership, Plan, QuotaPeriod, Tenant
from tenants.services import api_key_revoke, period_start, tenant_set_status


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    raw_id_fields = ["user"]


class ApiKeyInline(admin.TabularInline):
    model = ApiKey
    extra = 0
    can_delete = False
    fields = ("name", "prefix", "scopes", "created_at", "last_used_at", "expires_at", "revoked_at")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False  # keys are created through the dashboard, API or create_api_key


class PlanForm(forms.ModelForm):  # the admin adds the model and its fields
    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("reserved_concurrency") is not None:
            changed = copy.copy(self.instance)
            changed.reserved_concurrency = data["reserved_concurrency"]
            try:
                reservations_check(plan=changed)
            except ValidationError as error:
                self.add_error("reserved_concurrency", error)
        return data


class TenantForm(forms.ModelForm):  # the admin adds the model and its fields
    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("plan") is not None:
            changed = copy.copy(self.instance)
            changed.plan = data["plan"]
            changed.status = data.get("status", changed.status)
            try:
                reservations_check(tenant=changed)
            except ValidationError as error:
                self.add_error("plan", error)
        return data


@admin.register(Plan)
class PlanAdmin(admin.ModelAdmin):
    form = PlanForm
    list_display = [
        "name",
        "slug",
        "monthly_image_quota",
        "monthly_spend_cap",
        "requests_per_minute",
        "max_concurrent_jobs",
        "weight",
        "reserved_concurrency",
        "markup_per_image",
        "batch_allowed",
    ]
    prepopulated_fields = {"slug": ["name"]}


@admin.register(Tenant)
class TenantAdmin(admin.ModelAdmin):
    form = TenantForm
    list_display = [
        "name",
        "slug",
        "plan",
        "status",
        "usage_this_period",
        "stripe_customer_id",
        "created_at",
    ]
    list_filter = ["plan", "status"]
    list_select_related = ["plan"]
    search_fields = ["name", "slug", "stripe_customer_id"]
    inlines = [MembershipInline, ApiKeyInline]
    actions = ["suspend", "reactivate"]

    @admin.action(description="Suspend selected tenants (new work and API calls stop)")
    def suspend(self, request: HttpRequest, queryset: QuerySet[Tenant]) -> None:
        for tenant in queryset:
            tenant_set_status(tenant=tenant, status=Tenant.Status.SUSPENDED)
        self.message_user(request, f"Suspended {queryset.count():,} tenant(s).", messages.SUCCESS)

    @admin.action(description="Reactivate selected tenants")
    def reactivate(self, request: HttpRequest, queryset: QuerySet[Tenant]) -> None:
        for tenant in queryset:
            tenant_set_status(tenant=tenant, status=Tenant.Status.ACTIVE)
        self.message_user(request, f"Reactivated {queryset.count():,} tenant(s).", messages.SUCCESS)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Tenant]:
        # One subquery, not one query per row.
        period = QuotaPeriod.objects.filter(
            tenant=OuterRef("pk"), period_start=period_start(timezone.now())
        )
        return (
            super()
            .get_queryset(request)
            .annotate(
                period_images=Subquery(period.values("images_used")[:1]),
                period_nanos=Subquery(period.values("spend_used_nanos")[:1]),
            )
        )

    @admin.display(description="Usage this period", ordering="period_images")
    def usage_this_period(self, tenant: Tenant) -> str:
        images = getattr(tenant, "period_images", None) or 0
        spend = from_nanos(getattr(tenant, "period_nanos", None) or 0)
        quota = tenant.plan.monthly_image_quota
        return f"{images:,} / {quota:,} images · {show_total(spend)}"


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "prefix",
        "tenant",
        "scopes",
        "last_used_at",
        "expires_at",
        "revoked_at",
    ]
    list_filter = [TenantFilter]
    list_select_related = ["tenant"]
    search_fields = ["name", "prefix", "tenant__slug"]
    exclude = ["secret_hash"]
    readonly_fields = ["prefix", "tenant", "created_by", "created_at", "last_used_at", "revoked_at"]
    actions = ["revoke"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # a key's secret is shown once at creation, which admin cannot do

    @admin.action(description="Revoke selected keys")
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        now = timezone.now()
        count = 0
        for api_key in queryset.filter(revoked_at__isnull=True):
            api_key_revoke(api_key=api_key, now=now)
            count += 1
        self.message_user(request, f"Revoked {count} key(s).", messages.SUCCESS)


@admin.register(Invitation)
class InvitationAdmin(admin.ModelAdmin):
    list_display = (
        "email",
        "tenant",
        "role",
        "invited_by",
        "created_at",
        "expires_at",
        "accepted_at",
    )
    list_filter = ("role",)
    search_fields = ("email", "tenant__slug")
    readonly_fields = ("token_hash",)


@admin.register(QuotaPeriod)
class QuotaPeriodAdmin(admin.ModelAdmin):
    list_display = ["tenant", "period_start", "images_used", "images_reserved"]
    list_filter = ["period_start"]
    list_select_related = ["tenant"]
    readonly_fields = [
        "tenant",
        "period_start",
        "images_used",
        "images_reserved",
        "spend_used_nanos",
        "spend_reserved_nanos",
    ]

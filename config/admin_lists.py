"""Admin changelists at millions of rows: what every page renders per row or per tenant,
made cheap (the queries themselves are in `config.paging`)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.admin import helpers
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.translation import gettext as _

from tenants.models import Tenant


class TenantFilter(admin.SimpleListFilter):
    """ "By tenant" as a box for a tenant's id or slug, and the chosen tenant. Django's
    filter for a foreign key lists every tenant as a link on every page: a query of all
    of them and a thousand links rendered, a quarter of a job changelist's time with
    1,000 tenants. The parameter stays Django's (`tenant__id__exact`), so links made for
    that filter keep working."""

    title = "tenant"
    parameter_name = "tenant__id__exact"
    template = "admin/tenant_filter.html"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.tenant: Tenant | None = None
        super().__init__(*args, **kwargs)

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        value = (self.value() or "").strip()
        if value:
            by = {"pk": int(value)} if value.isdigit() else {"slug": value}
            self.tenant = Tenant.objects.filter(**by).first()
        return [(str(self.tenant.pk), str(self.tenant))] if self.tenant else []

    def has_output(self) -> bool:
        return True  # the box, even with no tenant chosen

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value() is None:
            return queryset
        # An unknown id or slug lists nothing, as an id no tenant has does in Django's.
        return queryset.filter(tenant=self.tenant) if self.tenant else queryset.none()

    def choices(self, changelist: Any) -> Any:
        self.other_params = [
            (name, value)
            for name, values in changelist.filter_params.items()
            if name != self.parameter_name
            for value in values
        ]
        yield from super().choices(changelist)


class ListAtScaleMixin:
    """For a ModelAdmin: its action checkbox (one per row) as the HTML Django's widget
    renders, without rendering the widget's templates 100 times a page (a sixth of a
    changelist's time). tests/dashboard/test_admin_lists.py holds the two equal."""

    def action_checkbox(self, obj: Any) -> SafeString:
        label = format_html(_("Select this object for an action - {}"), str(obj))
        return format_html(
            '<input type="checkbox" name="{}" value="{}" class="action-select" aria-label="{}">',
            helpers.ACTION_CHECKBOX_NAME,
            str(obj.pk),
            label,
        )

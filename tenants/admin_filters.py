"""The admin's "By tenant" filter, for every changelist of tenant-owned rows."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

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

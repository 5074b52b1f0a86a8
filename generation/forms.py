"""Dashboard forms of the generation domain: gallery filters and webhook endpoints."""

from __future__ import annotations

import datetime as dt
from typing import Any, cast

from django import forms
from django.db.models import QuerySet

from generation.models import Image, Job, Provenance
from generation.presets import PRESETS
from tenants.models import Tenant

ANY = [("", "Any")]
PROVENANCE_CHOICES: list[tuple[str, str]] = [
    (Provenance.State.TRUSTED, "Verified issuer"),
    (Provenance.State.VALID, "Unrecognized issuer"),
    (Provenance.State.INVALID, "May have been tampered with"),
    (Provenance.State.NONE, "No Content Credentials"),
]


class GalleryFilterForm(forms.Form):
    q = forms.CharField(
        required=False,
        label="Search",
        widget=forms.TextInput(attrs={"type": "search", "placeholder": "Search prompts…"}),
    )
    kind = forms.ChoiceField(
        required=False, choices=ANY + [(k, p.label) for k, p in PRESETS.items()]
    )
    status = forms.ChoiceField(required=False, label="Job status", choices=ANY + Job.Status.choices)
    provenance = forms.ChoiceField(
        required=False, label="Content Credentials", choices=ANY + PROVENANCE_CHOICES
    )
    date_from = forms.DateField(
        required=False, label="From", widget=forms.DateInput(attrs={"type": "date"})
    )
    date_to = forms.DateField(
        required=False, label="To", widget=forms.DateInput(attrs={"type": "date"})
    )
    batch = forms.ChoiceField(required=False, choices=ANY)
    locale = forms.ChoiceField(required=False, choices=ANY)

    def __init__(self, *args: Any, tenant: Tenant | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if tenant is None:
            return
        # Through the reverse relations, so that this domain does not import batches.
        recent = tenant.batches.order_by("-created_at").values_list("pk", "name", "created_at")
        batches = cast(forms.ChoiceField, self.fields["batch"])
        batches.choices = ANY + [
            (str(pk), name or f"Batch of {created:%b %-d, %H:%M}")
            for pk, name, created in recent[:100]
        ]
        locales = (
            Image.objects.filter(tenant=tenant, job__batch_item__locale__gt="")
            .values_list("job__batch_item__locale", flat=True)
            .distinct()
            .order_by("job__batch_item__locale")
        )
        cast(forms.ChoiceField, self.fields["locale"]).choices = ANY + [
            (code, code) for code in locales[:200]
        ]

    def filter(self, images: QuerySet[Image]) -> QuerySet[Image]:
        """Narrow an already tenant-scoped queryset; invalid filters are ignored."""
        if not self.is_valid():
            return images
        data = self.cleaned_data
        if data["q"]:
            images = images.filter(job__prompt__icontains=data["q"])
        if data["kind"]:
            images = images.filter(job__kind=data["kind"])
        if data["status"]:
            images = images.filter(job__status=data["status"])
        if data["provenance"]:
            images = images.filter(provenance__state=data["provenance"])
        if data["date_from"]:
            images = images.filter(created_at__date__gte=data["date_from"])
        if data["date_to"]:
            images = images.filter(created_at__date__lt=data["date_to"] + dt.timedelta(days=1))
        if data.get("batch"):
            images = images.filter(job__batch_id=data["batch"])
        if data.get("locale"):
            images = images.filter(job__batch_item__locale=data["locale"])
        return images

    @property
    def active(self) -> bool:
        return self.is_valid() and any(self.cleaned_data.values())

"""Dashboard forms of the generation domain: gallery filters and webhook endpoints."""

from __future__ import annotations

import datetime as dt
from typing import Any, cast

from django import forms
from django.db.models import QuerySet

from config.widgets import PlainSelect
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
    source = forms.ChoiceField(
        required=False,
        label="Made by",
        choices=[*ANY, (Image.Source.GENERATED, "Generated"), (Image.Source.UPLOAD, "Uploaded")],
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
    # Up to 100 batches and 200 locales: options rendered without a template each.
    batch = forms.ChoiceField(required=False, choices=ANY, widget=PlainSelect)
    locale = forms.ChoiceField(required=False, choices=ANY, widget=PlainSelect)

    def __init__(self, *args: Any, tenant: Tenant | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if tenant is None:
            return
        # Through the reverse relations, so that this domain does not import batches.
        recent = list(
            tenant.batches.order_by("-created_at").values_list("pk", "name", "created_at")[:100]
        )
        batches = cast(forms.ChoiceField, self.fields["batch"])
        batches.choices = ANY + [
            (str(pk), name or f"Batch of {created:%b %-d, %H:%M}") for pk, name, created in recent
        ]
        # The locales of the same recent batches (a partial index of localised items,
        # batch_item_locale), not the distinct locales of every image the tenant ever
        # made: that read all batch items of every tenant (50 ms at 10M rows). A locale
        # asked for (an older batch's, a link) stays a choice, so its filter still works.
        locales = (
            tenant.batches.filter(pk__in=[pk for pk, _, _ in recent], items__locale__gt="")
            .values_list("items__locale", flat=True)
            .distinct()
            .order_by("items__locale")
        )
        codes = list(locales[:200])
        asked = self.data.get("locale") if self.is_bound else None
        if asked and asked not in codes and len(asked) <= 35:
            codes = sorted([*codes, asked])
        cast(forms.ChoiceField, self.fields["locale"]).choices = ANY + [(c, c) for c in codes]

    def clean(self) -> dict[str, object]:
        data = super().clean() or {}
        start, end = data.get("date_from"), data.get("date_to")
        if start and end and start > end:
            raise forms.ValidationError(
                f"“From” ({start:%b %-d, %Y}) is after “To” ({end:%b %-d, %Y}): swap them."
            )
        return data

    def filter(self, images: QuerySet[Image]) -> QuerySet[Image]:
        """Narrow an already tenant-scoped queryset; invalid filters are ignored."""
        if not self.is_valid():
            return images
        data = self.cleaned_data
        if data["q"]:
            images = images.filter(job__prompt__icontains=data["q"])
        if data["kind"]:
            images = images.filter(job__kind=data["kind"])
        if data["source"]:
            images = images.filter(source=data["source"])
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

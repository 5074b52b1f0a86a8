"""Dashboard forms of the generation domain: gallery filters and webhook endpoints."""

from __future__ import annotations

import datetime as dt

from django import forms
from django.db.models import QuerySet

from generation.models import Image, Job, Provenance
from generation.presets import PRESETS

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
        return images

    @property
    def active(self) -> bool:
        return self.is_valid() and any(self.cleaned_data.values())

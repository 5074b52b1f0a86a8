"""The dashboard's new-storyboard form."""

from __future__ import annotations

from typing import Any

from django import forms

from core.catalog import ALL_RATIOS
from generation.presets import PRESETS
from series.models import MAX_FRAMES, Consistency


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class ReferencesField(forms.FileField):
    def clean(self, data: Any, initial: Any = None) -> list[Any]:
        files = data if isinstance(data, list | tuple) else ([data] if data else [])
        return [super(ReferencesField, self).clean(f, initial) for f in files]


class StoryboardForm(forms.Form):
    name = forms.CharField(max_length=200, required=False)
    kind = forms.ChoiceField(choices=[(k, p.label) for k, p in PRESETS.items()], initial="image")
    consistency = forms.ChoiceField(choices=Consistency.choices, initial=Consistency.BOTH)
    aspect_ratio = forms.ChoiceField(
        choices=[("", "The kind's default"), *((r, r) for r in ALL_RATIOS)], required=False
    )
    references = ReferencesField(
        required=False,
        widget=MultipleFileInput(attrs={"accept": "image/png,image/jpeg,image/webp"}),
        help_text="A character sheet, a product, a style: up to 14 images.",
    )
    frames = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 6}),
        help_text=f"One frame per line, in order (1–{MAX_FRAMES}).",
    )

    def clean_frames(self) -> list[str]:
        lines = [line.strip() for line in self.cleaned_data["frames"].splitlines()]
        prompts = [line for line in lines if line]
        if not 1 <= len(prompts) <= MAX_FRAMES:
            raise forms.ValidationError(f"Write 1 to {MAX_FRAMES} frames, one per line.")
        return prompts

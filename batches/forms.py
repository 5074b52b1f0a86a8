"""Dashboard forms of batches: prompt templates and a new batch's source."""

from __future__ import annotations

from typing import Any

from django import forms

from batches.models import BatchDraft, PromptTemplate
from core.catalog import ALL_RATIOS, MODELS
from generation.models import Kind

MAX_UPLOAD_BYTES = 20 * 1024 * 1024
ANY_RATIO = [("", "The kind's default")]


def _pairs(line: str, where: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in line.split("|"):
        if not part.strip():
            continue
        name, eq, value = part.partition("=")
        if not eq or not name.strip():
            raise forms.ValidationError(f"{where}: write name = value, got “{part.strip()}”.")
        out[name.strip()] = value.strip()
    return out


def parse_defaults(text: str) -> dict[str, str]:
    """`name = value`, one per line."""
    out: dict[str, str] = {}
    for n, line in enumerate(text.splitlines(), 1):
        if line.strip():
            out.update(_pairs(line, f"Line {n}"))
    return out


def parse_locales(text: str) -> list[dict[str, str]]:
    """One locale per line: `de` or `de | headline = Sommerschlussverkauf | cta = Jetzt`."""
    out: list[dict[str, str]] = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        code, _, rest = line.partition("|")
        if not code.strip() or "=" in code:
            raise forms.ValidationError(f"Line {n}: start with a locale code, such as de or fr-CA.")
        out.append({"locale": code.strip(), **_pairs(rest, f"Line {n}")})
    return out


def format_defaults(values: dict[str, Any]) -> str:
    return "\n".join(f"{k} = {v}" for k, v in values.items())


def format_locales(entries: list[dict[str, Any]]) -> str:
    lines = []
    for entry in entries:
        extra = " | ".join(f"{k} = {v}" for k, v in entry.items() if k != "locale")
        lines.append(entry["locale"] + (f" | {extra}" if extra else ""))
    return "\n".join(lines)


class TemplateForm(forms.Form):
    name = forms.CharField(max_length=120)
    text = forms.CharField(
        label="Prompt",
        max_length=8000,
        widget=forms.Textarea(
            attrs={"rows": 4, "placeholder": "A {season} sale banner for {product}"}
        ),
        help_text="Put variables in braces: {product}. Write a literal brace as {{ or }}.",
    )
    kind = forms.ChoiceField(choices=Kind.choices, initial=Kind.IMAGE)
    aspect_ratio = forms.ChoiceField(
        label="Default ratio", choices=ANY_RATIO + [(r, r) for r in ALL_RATIOS], required=False
    )
    model = forms.ChoiceField(
        label="Default model", choices=[(t, s.display_name) for t, s in MODELS.items()]
    )
    defaults = forms.CharField(
        label="Default values",
        required=False,
        widget=forms.Textarea(attrs={"rows": 2, "placeholder": "season = summer"}),
        help_text="Used when a row leaves a variable empty. One <code>name = value</code> a line.",
    )
    locales = forms.CharField(
        required=False,
        widget=forms.Textarea(
            attrs={"rows": 3, "placeholder": "en\nde | headline = Sommerschlussverkauf\nfr"}
        ),
        help_text="One locale a line, optionally with values that replace the row's: "
        "<code>de | headline = Sommerschlussverkauf</code>.",
    )

    def clean_defaults(self) -> dict[str, str]:
        return parse_defaults(self.cleaned_data["defaults"])

    def clean_locales(self) -> list[dict[str, str]]:
        return parse_locales(self.cleaned_data["locales"])

    @classmethod
    def for_template(cls, template: PromptTemplate) -> TemplateForm:
        return cls(
            initial={
                "name": template.name,
                "text": template.text,
                "kind": template.kind,
                "aspect_ratio": template.aspect_ratio,
                "model": template.model,
                "defaults": format_defaults(template.defaults),
                "locales": format_locales(template.locales),
            }
        )


class SourceForm(forms.Form):
    source = forms.ChoiceField(
        choices=BatchDraft.Source.choices, widget=forms.RadioSelect, initial="template"
    )
    template = forms.ModelChoiceField(queryset=PromptTemplate.objects.none(), required=False)
    locales = forms.MultipleChoiceField(required=False, widget=forms.CheckboxSelectMultiple)
    rows = forms.CharField(
        label="Rows (CSV)",
        required=False,
        widget=forms.Textarea(
            attrs={
                "rows": 8,
                "spellcheck": "false",
                "class": "mono",
                "placeholder": "product,colour\nmug,teal\ntote bag,coral",
            }
        ),
    )
    file = forms.FileField(label="…or upload a CSV file", required=False)
    model = forms.ChoiceField(
        choices=[("", "The template's")] + [(t, s.display_name) for t, s in MODELS.items()],
        required=False,
    )
    aspect_ratio = forms.ChoiceField(
        label="Ratio", choices=[("", "Default")] + [(r, r) for r in ALL_RATIOS], required=False
    )

    def __init__(self, *args: Any, templates: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["template"].queryset = templates  # type: ignore[attr-defined]
        codes = sorted({c for t in templates for c in t.locale_codes})
        self.fields["locales"].choices = [(c, c) for c in codes]  # type: ignore[attr-defined]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        upload = data.get("file")
        if upload is not None:
            if upload.size > MAX_UPLOAD_BYTES:
                raise forms.ValidationError("The file is larger than 20 MB.")
            data["raw"] = upload.read()
        elif not (data.get("rows") or "").strip():
            raise forms.ValidationError("Paste rows or upload a CSV file.")
        return data

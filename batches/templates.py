"""Named writes of prompt templates, and their rendering for previews and batches."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from django.db import transaction
from django.utils import timezone

from batches import prompts
from batches.models import PromptTemplate
from batches.prompts import RenderedPrompt, TemplateError
from core.catalog import MODELS
from generation.models import Kind
from generation.services import InvalidRequest
from tenants.models import Tenant


def _invalid(error: TemplateError, code: str) -> InvalidRequest:
    return InvalidRequest(error.message, code=code, fields=error.fields or None)


def _checked(
    text: str, defaults: Mapping[str, Any], locales: Sequence[Any], model: str
) -> list[dict[str, str]]:
    if model not in MODELS:
        raise InvalidRequest(
            f"Unknown model {model!r}; use one of {', '.join(MODELS)}.",
            code="invalid_template",
            fields={"model": [f"Use one of {', '.join(MODELS)}."]},
        )
    try:
        prompts.check(text, defaults)
        return prompts.check_locales(text, locales)
    except TemplateError as error:
        raise _invalid(error, "invalid_template") from None


@transaction.atomic
def template_create(
    *,
    tenant: Tenant,
    name: str,
    text: str,
    defaults: Mapping[str, Any] | None = None,
    kind: str = Kind.IMAGE,
    aspect_ratio: str = "",
    model: str = "lite",
    locales: Sequence[Mapping[str, Any]] = (),
) -> PromptTemplate:
    cleaned = _checked(text, defaults or {}, locales, model)
    return PromptTemplate.objects.create(
        tenant=tenant,
        name=name,
        text=text,
        defaults=dict(defaults or {}),
        kind=kind,
        aspect_ratio=aspect_ratio,
        model=model,
        locales=cleaned,
    )


@transaction.atomic
def template_update(*, template: PromptTemplate, **changes: Any) -> PromptTemplate:
    """Change any of name, text, defaults, kind, aspect_ratio, model, locales; the result
    must still check."""
    allowed = {"name", "text", "defaults", "kind", "aspect_ratio", "model", "locales"}
    for key, value in changes.items():
        if key not in allowed:
            raise TypeError(f"template_update() got an unexpected field {key!r}")
        setattr(template, key, value)
    template.locales = _checked(template.text, template.defaults, template.locales, template.model)
    template.updated_at = timezone.now()
    template.save()
    return template


@transaction.atomic
def template_delete(*, template: PromptTemplate) -> None:
    """Batches made from it keep their items; they only lose the link."""
    template.delete()


def template_render(
    *,
    template: PromptTemplate,
    rows: Sequence[Mapping[str, Any]],
    locales: Sequence[Mapping[str, Any]] = (),
) -> list[RenderedPrompt]:
    """One prompt per row × locale, or a 400 naming the missing and unknown variables."""
    try:
        return prompts.expand(
            text=template.text, defaults=template.defaults, rows=rows, locales=locales
        )
    except TemplateError as error:
        raise _invalid(error, "template_variables") from None

"""Named writes of prompt templates, and their rendering for previews and batches."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from django.db import transaction
from django.utils import timezone

from batches import prompts
from batches.models import PromptTemplate
from batches.prompts import RenderedPrompt, TemplateError
from generation.models import Kind
from generation.services import InvalidRequest
from tenants.models import Tenant


def _invalid(error: TemplateError, code: str) -> InvalidRequest:
    return InvalidRequest(error.message, code=code, fields=error.fields or None)


def _checked(text: str, defaults: Mapping[str, Any]) -> None:
    try:
        prompts.check(text, defaults)
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
) -> PromptTemplate:
    _checked(text, defaults or {})
    return PromptTemplate.objects.create(
        tenant=tenant,
        name=name,
        text=text,
        defaults=dict(defaults or {}),
        kind=kind,
        aspect_ratio=aspect_ratio,
    )


@transaction.atomic
def template_update(*, template: PromptTemplate, **changes: Any) -> PromptTemplate:
    """Change any of name, text, defaults, kind, aspect_ratio; the result must still check."""
    allowed = {"name", "text", "defaults", "kind", "aspect_ratio"}
    for key, value in changes.items():
        if key not in allowed:
            raise TypeError(f"template_update() got an unexpected field {key!r}")
        setattr(template, key, value)
    _checked(template.text, template.defaults)
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

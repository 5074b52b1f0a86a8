"""Prompt templates: text with `{variables}`, defaults, rows of values and locale variants.

Plain Python (no Django). Only bare names are fields — `{product}`, never `{0}`,
`{a.b}`, `{a[0]}`, `{a!r}` or `{a:>10}` — so rendering can only substitute text; `{{` and
`}}` are literal braces.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
MAX_VALUE_CHARS = 2_000
MAX_REPORTED = 20


class TemplateError(ValueError):
    """The template or its values are wrong; `fields` says where (as the API reports it)."""

    def __init__(self, message: str, fields: dict[str, list[str]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.fields = fields or {}


@dataclass(frozen=True)
class RenderedPrompt:
    index: int
    row: int
    locale: str
    prompt: str
    values: dict[str, str] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return self.locale


def _parsed(text: str) -> list[tuple[str, str | None]]:
    try:
        pieces = list(string.Formatter().parse(text))
    except ValueError as exc:
        raise TemplateError(
            f"The template text is not valid: {exc}. Write literal braces as {{{{ and }}}}.",
            {"text": [str(exc)]},
        ) from None
    out: list[tuple[str, str | None]] = []
    for literal, name, spec, conversion in pieces:
        if name is not None and (not NAME.fullmatch(name) or spec or conversion):
            shown = (
                "{"
                + name
                + (f"!{conversion}" if conversion else "")
                + (f":{spec}" if spec else "")
                + "}"
            )
            raise TemplateError(
                f"{shown} is not a variable: use a plain name such as {{product}}.",
                {"text": [f"{shown} is not a variable."]},
            )
        out.append((literal, name))
    return out


def variables(text: str) -> list[str]:
    """The template's variable names, in order of first use."""
    names: list[str] = []
    for _, name in _parsed(text):
        if name is not None and name not in names:
            names.append(name)
    return names


def check(text: str, defaults: Mapping[str, Any]) -> list[str]:
    """Validate a template for saving; returns its variables."""
    names = variables(text)
    if not names:
        raise TemplateError(
            "The template has no {variables}; a plain prompt needs no template.",
            {"text": ["No {variables} found."]},
        )
    unknown = sorted(set(defaults) - set(names))
    if unknown:
        raise TemplateError(
            f"Defaults name variables the template does not use: {', '.join(unknown)}.",
            {"defaults": [f"Unknown variable(s): {', '.join(unknown)}."]},
        )
    _values(defaults, "defaults")
    return names


def _values(values: Mapping[str, Any], where: str) -> dict[str, str]:
    out = {}
    for key, value in values.items():
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise TemplateError(
                f"{where}.{key} must be text or a number.",
                {f"{where}.{key}": ["Must be text or a number."]},
            )
        if len(str(value)) > MAX_VALUE_CHARS:
            raise TemplateError(
                f"{where}.{key} is longer than {MAX_VALUE_CHARS} characters.",
                {f"{where}.{key}": [f"At most {MAX_VALUE_CHARS} characters."]},
            )
        out[str(key)] = str(value)
    return out


def check_locales(text: str, locales: Sequence[Any]) -> list[dict[str, str]]:
    """Validate a template's locale variants: each has a unique `locale` code and overrides
    only the template's variables; returns them cleaned (codes stripped)."""
    names = variables(text)
    out: list[dict[str, str]] = []
    seen: set[str] = set()
    for j, entry in enumerate(locales):
        locale, values = _locale_values(entry, j, names)
        where = f"locales[{j}]"
        if locale in seen:
            raise TemplateError(f"Locale {locale!r} is listed twice.", {where: ["Listed twice."]})
        seen.add(locale)
        unknown = sorted(set(values) - set(names))
        if unknown:
            raise TemplateError(
                f"Locale {locale!r} overrides variables the template does not use: "
                f"{', '.join(unknown)}.",
                {where: [f"Unknown variable(s): {', '.join(unknown)}."]},
            )
        out.append({"locale": locale, **{k: v for k, v in values.items() if v != ""}})
    return out


def missing_for(text: str, values: Mapping[str, str]) -> list[str]:
    """The template's variables that `values` leaves without a value (empty counts as none)."""
    return [name for name in variables(text) if not str(values.get(name, "")).strip()]


def render(text: str, values: Mapping[str, str]) -> str:
    return "".join(literal + (values[name] if name else "") for literal, name in _parsed(text))


def _locale_values(entry: Any, j: int, names: list[str]) -> tuple[str, dict[str, str]]:
    where = f"locales[{j}]"
    if not isinstance(entry, Mapping) or not str(entry.get("locale") or "").strip():
        raise TemplateError(
            f"{where} must be an object with a `locale` and its variables.",
            {where: ['Needs a `locale`, e.g. {"locale": "de-DE", "headline": "…"}.']},
        )
    values = _values(entry, where)
    locale = values["locale"].strip()
    if "locale" not in names:  # the label, not a variable, unless the template uses it
        del values["locale"]
    return locale, values


def expand(
    *,
    text: str,
    defaults: Mapping[str, Any],
    rows: Sequence[Mapping[str, Any]],
    locales: Sequence[Mapping[str, Any]] = (),
) -> list[RenderedPrompt]:
    """One prompt per row × locale (rows default to one empty row), or a TemplateError that
    names every missing and unknown variable, and where."""
    names = variables(text)
    base = _values(defaults, "defaults")
    per_locale = [_locale_values(entry, j, names) for j, entry in enumerate(locales)]
    problems: dict[str, list[str]] = {}
    all_missing: set[str] = set()
    all_unknown: set[str] = set()
    for j, (_, values) in enumerate(per_locale):
        unknown = sorted(set(values) - set(names))
        if unknown:
            all_unknown.update(unknown)
            problems[f"locales[{j}]"] = [f"Unknown variable(s): {', '.join(unknown)}."]
    prompts: list[RenderedPrompt] = []
    for i, row in enumerate(rows or [{}]):
        if not isinstance(row, Mapping):
            raise TemplateError(f"rows[{i}] must be an object of variables.", {f"rows[{i}]": []})
        row_values = _values(row, f"rows[{i}]")
        unknown = sorted(set(row_values) - set(names))
        if unknown:
            all_unknown.update(unknown)
            problems[f"rows[{i}]"] = [f"Unknown variable(s): {', '.join(unknown)}."]
        for j, (locale, locale_values) in enumerate(per_locale or [("", {})]):
            values = {**base, **row_values, **locale_values}
            missing = [n for n in names if n not in values]
            if missing:
                all_missing.update(missing)
                where = f"rows[{i}]" + (f".locales[{j}]" if per_locale else "")
                problems.setdefault(where, []).append(f"Missing variable(s): {', '.join(missing)}.")
            else:
                prompts.append(
                    RenderedPrompt(len(prompts), i, locale, render(text, values), values)
                )
    if problems:
        parts = [
            f"{what} variable(s) {', '.join(sorted(found))}"
            for what, found in (("missing", all_missing), ("unknown", all_unknown))
            if found
        ]
        raise TemplateError(
            f"The values do not fit the template: {'; '.join(parts)}.",
            dict(list(problems.items())[:MAX_REPORTED]),
        )
    return prompts

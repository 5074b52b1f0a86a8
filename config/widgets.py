"""Form widgets that render what Django's do, with less of the template engine."""

from __future__ import annotations

from typing import Any

from django import forms
from django.utils.html import conditional_escape, format_html
from django.utils.safestring import SafeString, mark_safe


def _attrs(attrs: dict[str, Any]) -> str:
    # django/forms/widgets/attrs.html: False left out, True as a bare name.
    return "".join(
        f" {name}" if value is True else f' {name}="{conditional_escape(str(value))}"'
        for name, value in attrs.items()
        if value is not False
    )


class PlainSelect(forms.Select):
    """Django's `Select`, to the byte, without rendering `select_option.html` once per
    choice: the gallery's filters list up to 100 batches and 200 locales, a template
    render each on every page. Grouped choices take Django's own path.
    tests/dashboard/test_plain_select.py holds the two equal."""

    def render(
        self, name: str, value: Any, attrs: dict[str, Any] | None = None, renderer: Any = None
    ) -> SafeString:
        widget = self.get_context(name, value, attrs)["widget"]
        if any(group_name for group_name, _, _ in widget["optgroups"]):
            return super().render(name, value, attrs, renderer)  # type: ignore[return-value]
        options = "".join(
            "\n  "
            + format_html(
                '<option value="{}"{}>{}</option>',
                str(option["value"]),
                mark_safe(_attrs(option["attrs"])),
                option["label"],
            )
            + "\n"
            for _, group, _ in widget["optgroups"]
            for option in group
        )
        head = format_html(
            '<select name="{}"{}>', widget["name"], mark_safe(_attrs(widget["attrs"]))
        )
        return mark_safe(f"{head}{options}\n</select>")

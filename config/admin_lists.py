"""Admin changelists at millions of rows: what every page renders per row or per tenant,
made cheap (the queries themselves are in `config.paging`)."""

from __future__ import annotations

from typing import Any

from django.contrib.admin import helpers
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.translation import gettext as _


class ListAtScaleMixin:
    """For a ModelAdmin: its action checkbox (one per row) as the HTML Django's widget
    renders, without rendering the widget's templates 100 times a page (a sixth of a
    changelist's time). tests/dashboard/test_admin_lists.py holds the two equal."""

    def action_checkbox(self, obj: Any) -> SafeString:
        label = format_html(_("Select this object for an action - {}"), str(obj))
        return format_html(
            '<input type="checkbox" name="{}" value="{}" class="action-select" aria-label="{}">',
            helpers.ACTION_CHECKBOX_NAME,
            str(obj.pk),
            label,
        )

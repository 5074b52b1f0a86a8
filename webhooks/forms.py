from __future__ import annotations

from django import forms

from webhooks.models import WebhookEndpoint


class WebhookEndpointForm(forms.Form):
    url = forms.URLField(
        label="Endpoint URL",
        max_length=500,
        widget=forms.URLInput(attrs={"placeholder": "https://example.com/bunch/webhooks"}),
        assume_scheme="https",
    )
    description = forms.CharField(max_length=200, required=False)
    event_types = forms.MultipleChoiceField(
        label="Events",
        required=False,
        choices=[(e, e) for e in WebhookEndpoint.EVENT_TYPES],
        widget=forms.CheckboxSelectMultiple,
        help_text="Leave all unticked to receive every event.",
    )

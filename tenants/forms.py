"""Dashboard forms of the tenants domain: API keys and members."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth import password_validation
from django.core.mail import EmailMultiAlternatives
from django.http import HttpRequest
from django.template import loader
from django.urls import reverse

from tenants import roles
from tenants.models import ApiKey, Invitation, Membership, Tenant

SCOPE_HELP = {
    "generate": "Submit generations, edits and batches",
    "read": "Read jobs, images and batches",
    "billing": "Read usage and the invoice; open Checkout and the billing portal",
    "webhooks": "Manage webhook endpoints, their signing secrets and delivery logs",
    "keys:manage": "Create, list and revoke API keys through the API",
}


class ApiKeyForm(forms.Form):
    name = forms.CharField(
        max_length=80,
        widget=forms.TextInput(attrs={"placeholder": "e.g. Production server"}),
        help_text="So you can tell keys apart later.",
    )
    scopes = forms.MultipleChoiceField(
        choices=[(s, f"{s} — {SCOPE_HELP.get(s, s)}") for s in ApiKey.SCOPES],
        initial=list(roles.DEFAULT_SCOPES),
        widget=forms.CheckboxSelectMultiple,
    )


class RoleForm(forms.Form):
    role = forms.ChoiceField(choices=Membership.Role.choices)

    def __init__(self, *args: Any, acting: Membership, target: Membership, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.acting = acting
        self.target = target

    def clean_role(self) -> str:
        role: str = self.cleaned_data["role"]
        _check_can_change(self.acting, self.target)
        if role == Membership.Role.OWNER and self.acting.role != Membership.Role.OWNER:
            raise forms.ValidationError("Only an owner can make someone an owner.")
        return role


def _check_can_change(acting: Membership, target: Membership) -> None:
    if target.user_id == acting.user_id:
        raise forms.ValidationError("You can't change your own role or remove yourself.")
    if target.role == Membership.Role.OWNER and acting.role != Membership.Role.OWNER:
        raise forms.ValidationError("Only an owner can change or remove another owner.")


def removal_error(acting: Membership, target: Membership) -> str | None:
    """Why `acting` may not remove `target`, or None when allowed."""
    try:
        _check_can_change(acting, target)
    except forms.ValidationError as exc:
        return str(exc.messages[0])
    return None


class InviteForm(forms.Form):
    email = forms.EmailField(widget=forms.EmailInput(attrs={"placeholder": "name@company.com"}))
    role = forms.ChoiceField(choices=Membership.Role.choices, initial=Membership.Role.MEMBER)

    def __init__(self, *args: Any, acting: Membership, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.acting = acting

    def clean_email(self) -> str:
        email: str = self.cleaned_data["email"].lower()
        tenant = self.acting.tenant
        if Membership.objects.filter(tenant=tenant, user__email__iexact=email).exists():
            raise forms.ValidationError(f"{email} is already a member of {tenant.name}.")
        return email

    def clean_role(self) -> str:
        role: str = self.cleaned_data["role"]
        if role == Membership.Role.OWNER and self.acting.role != Membership.Role.OWNER:
            raise forms.ValidationError("Only an owner can invite another owner.")
        return role


class NewPasswordForm(forms.Form):
    password1 = forms.CharField(label="Password", widget=forms.PasswordInput, strip=False)
    password2 = forms.CharField(label="Password again", widget=forms.PasswordInput, strip=False)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        first, second = data.get("password1"), data.get("password2")
        if first and second and first != second:
            raise forms.ValidationError("The two passwords differ.")
        if first:
            password_validation.validate_password(first)
        return data


def send_invite_email(*, request: HttpRequest, invitation: Invitation, token: str) -> None:
    """The invitation's accept link; the same email whether or not the address has an
    account (the page behind the link asks them to sign in or to choose a password)."""
    context = {
        "email": invitation.email,
        "tenant": invitation.tenant,
        "role": invitation.role,
        "inviter": invitation.invited_by,
        "expires_at": invitation.expires_at,
        "url": request.build_absolute_uri(reverse("invitation", args=[token])),
    }
    subject = loader.render_to_string("registration/invite_subject.txt", context).strip()
    body = loader.render_to_string("registration/invite_email.txt", context)
    EmailMultiAlternatives(subject, body, to=[invitation.email]).send()


class FallbackForm(forms.Form):
    """The dashboard's face of `PUT /api/v1/settings/fallback`; checked by `policy_parse`."""

    enabled = forms.BooleanField(required=False, label="Fall back when a model is throttled")
    models = forms.MultipleChoiceField(
        required=False,
        widget=forms.CheckboxSelectMultiple,
        label="Other models to try (in the order shown)",
    )
    max_price_per_image = forms.DecimalField(
        required=False,
        min_value=0,
        max_digits=8,
        decimal_places=6,
        label="Highest price per image (USD, including the markup)",
    )
    after_s = forms.FloatField(
        required=False,
        min_value=0,
        initial=20,
        label="Wait this long on a throttled model first (seconds)",
    )

    def __init__(self, *args: Any, tenant: Tenant, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        allowed = [t for t in ("lite", "flash", "pro") if tenant.plan.allows_tier(t)]
        self.fields["models"].choices = [(t, t.title()) for t in allowed]  # type: ignore[attr-defined]
        policy = tenant.fallback_policy or {}
        self.initial.update(
            enabled=bool(policy),
            models=policy.get("models", []),
            max_price_per_image=policy.get("max_price_per_image"),
            after_s=policy.get("after_s", 20),
        )

    def policy_body(self) -> dict[str, Any] | None:
        data = self.cleaned_data
        if not data["enabled"]:
            return None
        return {
            "models": list(data["models"]),
            "max_price_per_image": str(data["max_price_per_image"] or ""),
            "after_s": data["after_s"] if data["after_s"] is not None else 20,
        }

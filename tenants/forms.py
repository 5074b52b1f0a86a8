"""Dashboard forms of the tenants domain: API keys and members."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth.models import User
from django.contrib.auth.tokens import default_token_generator
from django.core.mail import EmailMultiAlternatives
from django.http import HttpRequest
from django.template import loader
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from tenants.models import ApiKey, Membership, Tenant, default_scopes

SCOPE_HELP = {
    "generate": "Submit generations and edits",
    "read": "Read jobs, images and usage",
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
        initial=default_scopes(),
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


def send_invite_email(
    *, request: HttpRequest, user: User, tenant: Tenant, role: str, inviter: User
) -> None:
    """A set-your-password link, like Django's password reset (which skips users with no
    usable password — exactly the invited ones)."""
    context = {
        "email": user.email,
        "tenant": tenant,
        "role": role,
        "inviter": inviter,
        "domain": request.get_host(),
        "protocol": "https" if request.is_secure() else "http",
        "uid": urlsafe_base64_encode(force_bytes(user.pk)),
        "token": default_token_generator.make_token(user),
    }
    subject = loader.render_to_string("registration/invite_subject.txt", context).strip()
    body = loader.render_to_string("registration/invite_email.txt", context)
    EmailMultiAlternatives(subject, body, to=[user.email]).send()

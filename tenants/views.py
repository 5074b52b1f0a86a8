"""Dashboard pages of the tenants domain, and the access rule every dashboard page uses."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from functools import wraps
from typing import Any
from urllib.parse import urlsplit

from django.contrib import messages
from django.contrib.auth import login as auth_login
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import Resolver404, resolve, reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from accounts.services import two_factor_active
from audit.selectors import events_for_tenant
from config.errors import BunchError, NotFound
from tenants import invitations, services
from tenants.fallback import policy_parse
from tenants.forms import (
    ApiKeyForm,
    FallbackForm,
    InviteForm,
    NewPasswordForm,
    RoleForm,
    removal_error,
    send_invite_email,
)
from tenants.models import Membership
from tenants.roles import Action, refusal_for_role, role_allows
from tenants.selectors import (
    SESSION_TENANT_KEY,
    api_keys_for_tenant,
    current_membership,
    memberships_for_user,
)

TenantView = Callable[..., HttpResponse]
SECRET_SESSION_KEY = "bunch_new_api_key"


def tenant_page(*, action: Action = Action.READ) -> Callable[[TenantView], TenantView]:
    """Signed in, acting for a tenant, with a role that allows `action` (`tenants.roles`,
    the map the API asks too), else 403.

    The view receives the membership. A tenant-scoped lookup that finds nothing
    (`config.errors.NotFound`) becomes the 404 page, so another tenant's object is as
    absent as one that never existed. The wrapper carries `bunch_action` so that the
    permission matrix test can read every page's action from the URLconf.
    """

    def decorate(view: TenantView) -> TenantView:
        @login_required
        @wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            membership = current_membership(request)
            if membership is None:
                return render(request, "dashboard/no_workspace.html", status=403)
            if not membership.allows(action):
                raise PermissionDenied(refusal_for_role(action))
            if membership.tenant.require_two_factor and not two_factor_active(request.user):
                return redirect(f"{reverse('account-two-factor')}?required=1")
            try:
                return view(request, membership, *args, **kwargs)
            except NotFound as exc:
                raise Http404(exc.message) from exc

        wrapper.bunch_action = action  # type: ignore[attr-defined]
        # Read by the BOLA test: a page a member may not open.
        wrapper.manager_only = not role_allows("member", action)  # type: ignore[attr-defined]
        return wrapper

    return decorate


def _membership_or_404(membership: Membership, membership_id: int) -> Membership:
    target = (
        Membership.objects.filter(tenant=membership.tenant, pk=membership_id)
        .select_related("user")
        .first()
    )
    if target is None:
        raise NotFound("No such member.")
    return target


@tenant_page()
def home(request: HttpRequest, membership: Membership) -> HttpResponse:
    return redirect("dashboard:generate")


@login_required
@require_POST
def tenant_switch(request: HttpRequest) -> HttpResponse:
    tenant_id = request.POST.get("tenant", "")
    membership = (
        memberships_for_user(request.user).filter(tenant_id=tenant_id).first()  # type: ignore[arg-type]
        if tenant_id.isdigit()
        else None
    )
    if membership is None:
        raise Http404("You are not a member of that workspace.")
    request.session[SESSION_TENANT_KEY] = membership.tenant_id
    messages.info(request, f"You're now working in {membership.tenant.name}.")
    target = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        target = ""
    return redirect(_section_index(target) or "dashboard:home")


# A page of one object (an image, a webhook endpoint, a batch) belongs to the workspace
# it came from: switching lands on the same section's index in the other workspace.
SECTION_INDEX = {"image": "dashboard:gallery", "webhook": "dashboard:webhooks"}


def _section_index(path: str) -> str | None:
    try:
        match = resolve(urlsplit(path).path)
    except Resolver404:
        return None
    if not match.kwargs:
        return path
    if match.namespace == "batches":
        return reverse("batches:list")
    return reverse(SECTION_INDEX.get(match.url_name or "", "dashboard:home"))


# API keys ------------------------------------------------------------------------------


@tenant_page(action=Action.API_KEYS_MANAGE)
def api_keys(request: HttpRequest, membership: Membership) -> HttpResponse:
    form = ApiKeyForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            issued = services.api_key_create(
                tenant=membership.tenant,
                name=form.cleaned_data["name"],
                scopes=form.cleaned_data["scopes"],
                created_by=request.user,  # type: ignore[arg-type]
            )
        except BunchError as exc:
            form.add_error(None, exc.message)
        else:
            # Shown on the next page view only: a reload makes it disappear for good.
            request.session[SECRET_SESSION_KEY] = {
                "id": issued.api_key.pk,
                "plaintext": issued.plaintext,
            }
            return redirect("dashboard:api-keys")
    new_key = request.session.pop(SECRET_SESSION_KEY, None)
    context = {
        "form": form,
        "keys": api_keys_for_tenant(membership.tenant),
        "new_key": new_key,
        "api_base": request.build_absolute_uri("/api/v1/"),
        "a_minute_ago": timezone.now() - dt.timedelta(minutes=1),  # "Just now", not "0 minutes"
    }
    return render(request, "dashboard/api_keys.html", context)


@tenant_page(action=Action.API_KEYS_MANAGE)
@require_POST
def api_key_revoke(request: HttpRequest, membership: Membership, key_id: int) -> HttpResponse:
    api_key = api_keys_for_tenant(membership.tenant).filter(pk=key_id).first()
    if api_key is None:
        raise NotFound("No such API key.")
    services.api_key_revoke(api_key=api_key)
    messages.success(request, f"Revoked “{api_key.name}”. Requests with it now get 401.")
    return redirect("dashboard:api-keys")


# Members -------------------------------------------------------------------------------


@tenant_page(action=Action.MEMBERS_MANAGE)
def members(request: HttpRequest, membership: Membership) -> HttpResponse:
    tenant = membership.tenant
    form = InviteForm(request.POST or None, acting=membership)
    if request.method == "POST" and form.is_valid():
        email, role = form.cleaned_data["email"], form.cleaned_data["role"]
        invitation, token = invitations.invitation_create(
            tenant=tenant,
            email=email,
            role=role,
            invited_by=request.user,  # type: ignore[arg-type]
        )
        send_invite_email(request=request, invitation=invitation, token=token)
        # The same words whether or not the address has an account anywhere.
        messages.success(request, f"Invitation sent to {email}. They join when they accept it.")
        return redirect("dashboard:members")
    rows = Membership.objects.filter(tenant=tenant).select_related("user").order_by("created_at")
    context = {
        "form": form,
        "rows": rows,
        "roles": Membership.Role.choices,
        "pending": invitations.invitations_pending(tenant),
    }
    return render(request, "dashboard/members.html", context)


@tenant_page(action=Action.MEMBERS_MANAGE)
@require_POST
def two_factor_policy(request: HttpRequest, membership: Membership) -> HttpResponse:
    """Owners and admins: every member must sign in with a second factor, or not."""
    required = request.POST.get("require") == "on"
    services.tenant_require_two_factor(tenant=membership.tenant, required=required)
    messages.success(
        request,
        "Every member now signs in with a second factor."
        if required
        else "Two-factor sign-in is now each member's choice.",
    )
    return redirect("dashboard:members")


@tenant_page(action=Action.MEMBERS_MANAGE)
@require_POST
def member_role(request: HttpRequest, membership: Membership, membership_id: int) -> HttpResponse:
    target = _membership_or_404(membership, membership_id)
    form = RoleForm(request.POST, acting=membership, target=target)
    if form.is_valid():
        services.membership_set(
            tenant=target.tenant, user=target.user, role=form.cleaned_data["role"]
        )
        messages.success(request, f"{target.user.email} is now {form.cleaned_data['role']}.")
    else:
        messages.error(request, " ".join(str(e) for errs in form.errors.values() for e in errs))
    return redirect("dashboard:members")


@tenant_page(action=Action.MEMBERS_MANAGE)
@require_POST
def member_remove(request: HttpRequest, membership: Membership, membership_id: int) -> HttpResponse:
    target = _membership_or_404(membership, membership_id)
    error = removal_error(membership, target)
    if error:
        messages.error(request, error)
    else:
        services.membership_remove(tenant=target.tenant, user=target.user)
        messages.success(request, f"Removed {target.user.email} from {target.tenant.name}.")
    return redirect("dashboard:members")


@tenant_page(action=Action.AUDIT_READ)
def audit_log(request: HttpRequest, membership: Membership) -> HttpResponse:
    members = Membership.objects.filter(tenant=membership.tenant)
    names = members.values_list("user__username", flat=True)
    events = events_for_tenant(membership.tenant_id, member_names=names)
    return render(request, "dashboard/audit.html", {"events": events})


# Invitations ---------------------------------------------------------------------------


def invitation_accept(request: HttpRequest, token: str) -> HttpResponse:
    """The emailed link: sign in as the invited address and join, or, for an address with
    no account yet, choose a password and join."""
    try:
        invitation = invitations.invitation_get_open(token)
    except NotFound:
        return render(request, "registration/invitation_invalid.html", status=404)
    context: dict[str, Any] = {"invitation": invitation}
    if not invitations.invitation_has_account(invitation):
        form = NewPasswordForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            joined = invitations.invitation_accept_new_user(
                token=token, password=form.cleaned_data["password1"]
            )
            auth_login(request, joined.user, backend="django.contrib.auth.backends.ModelBackend")
            return _joined(request, joined)
        return render(request, "registration/invitation.html", {**context, "form": form})
    signed_in_as = request.user.email.lower() if request.user.is_authenticated else None
    context["signed_in_as"] = signed_in_as
    if request.method == "POST" and signed_in_as == invitation.email:
        joined = invitations.invitation_accept(token=token, user=request.user)  # type: ignore[arg-type]
        return _joined(request, joined)
    return render(request, "registration/invitation.html", context)


def _joined(request: HttpRequest, membership: Membership) -> HttpResponse:
    request.session[SESSION_TENANT_KEY] = membership.tenant_id
    messages.success(request, f"Welcome to {membership.tenant.name}.")
    return redirect("dashboard:home")


@tenant_page(action=Action.BILLING_MANAGE)
def fallback_settings(request: HttpRequest, membership: Membership) -> HttpResponse:
    tenant = membership.tenant
    form = FallbackForm(request.POST or None, tenant=tenant)
    if request.method == "POST" and form.is_valid():
        body = form.policy_body()
        try:
            policy = None if body is None else policy_parse(body, plan=tenant.plan)
        except BunchError as exc:
            for field, errors in (exc.fields or {"__all__": [exc.message]}).items():
                for error in errors:
                    form.add_error(field if field in form.fields else None, error)
        else:
            services.tenant_fallback_set(tenant=tenant, policy=policy)
            messages.success(request, "Fallback policy saved." if policy else "Fallback is off.")
            return redirect("dashboard:fallback")
    return render(
        request, "dashboard/fallback.html", {"form": form, "policy": tenant.fallback_policy}
    )

"""Dashboard pages of the tenants domain, and the access rule every dashboard page uses."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from accounts.services import two_factor_active
from audit.selectors import events_for_tenant
from config.errors import BunchError, NotFound
from tenants import services
from tenants.forms import ApiKeyForm, InviteForm, RoleForm, removal_error, send_invite_email
from tenants.models import Membership
from tenants.selectors import (
    SESSION_TENANT_KEY,
    api_keys_for_tenant,
    current_membership,
    memberships_for_user,
)

TenantView = Callable[..., HttpResponse]
SECRET_SESSION_KEY = "bunch_new_api_key"
MANAGERS_ONLY = "Only owners and admins of this workspace can open this page."


def tenant_page(*, manage: bool = False) -> Callable[[TenantView], TenantView]:
    """Signed in, acting for a tenant (and managing it when `manage`), else 403.

    The view receives the membership. A tenant-scoped lookup that finds nothing
    (`config.errors.NotFound`) becomes the 404 page, so another tenant's object is as
    absent as one that never existed.
    """

    def decorate(view: TenantView) -> TenantView:
        @login_required
        @wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            membership = current_membership(request)
            if membership is None:
                return render(request, "dashboard/no_workspace.html", status=403)
            if manage and not membership.can_manage:
                raise PermissionDenied(MANAGERS_ONLY)
            if membership.tenant.require_two_factor and not two_factor_active(request.user):
                return redirect(f"{reverse('account-two-factor')}?required=1")
            try:
                return view(request, membership, *args, **kwargs)
            except NotFound as exc:
                raise Http404(exc.message) from exc

        wrapper.manager_only = manage  # type: ignore[attr-defined]  # read by the BOLA test
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
    return redirect(target or "dashboard:home")


# API keys ------------------------------------------------------------------------------


@tenant_page(manage=True)
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
    }
    return render(request, "dashboard/api_keys.html", context)


@tenant_page(manage=True)
@require_POST
def api_key_revoke(request: HttpRequest, membership: Membership, key_id: int) -> HttpResponse:
    api_key = api_keys_for_tenant(membership.tenant).filter(pk=key_id).first()
    if api_key is None:
        raise NotFound("No such API key.")
    services.api_key_revoke(api_key=api_key)
    messages.success(request, f"Revoked “{api_key.name}”. Requests with it now get 401.")
    return redirect("dashboard:api-keys")


# Members -------------------------------------------------------------------------------


@tenant_page(manage=True)
def members(request: HttpRequest, membership: Membership) -> HttpResponse:
    tenant = membership.tenant
    form = InviteForm(request.POST or None, acting=membership)
    if request.method == "POST" and form.is_valid():
        email, role = form.cleaned_data["email"], form.cleaned_data["role"]
        user = services.user_get_or_create(email=email)
        services.membership_set(tenant=tenant, user=user, role=role)
        if not user.has_usable_password():
            send_invite_email(
                request=request,
                user=user,
                tenant=tenant,
                role=role,
                inviter=request.user,  # type: ignore[arg-type]
            )
            messages.success(request, f"Invited {email}: they'll get an email to set a password.")
        else:
            messages.success(request, f"Added {email}; they can sign in with their password.")
        return redirect("dashboard:members")
    rows = Membership.objects.filter(tenant=tenant).select_related("user").order_by("created_at")
    context = {"form": form, "rows": rows, "roles": Membership.Role.choices}
    return render(request, "dashboard/members.html", context)


@tenant_page(manage=True)
@require_POST
def two_factor_policy(request: HttpRequest, membership: Membership) -> HttpResponse:
    """Owners only: every member must sign in with a second factor, or not."""
    if membership.role != Membership.Role.OWNER:
        raise PermissionDenied("Only owners can change who must use two-factor sign-in.")
    required = request.POST.get("require") == "on"
    services.tenant_require_two_factor(tenant=membership.tenant, required=required)
    messages.success(
        request,
        "Every member now signs in with a second factor."
        if required
        else "Two-factor sign-in is now each member's choice.",
    )
    return redirect("dashboard:members")


@tenant_page(manage=True)
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


@tenant_page(manage=True)
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


@tenant_page(manage=True)
def audit_log(request: HttpRequest, membership: Membership) -> HttpResponse:
    members = Membership.objects.filter(tenant=membership.tenant)
    names = members.values_list("user__username", flat=True)
    events = events_for_tenant(membership.tenant_id, member_names=names)
    return render(request, "dashboard/audit.html", {"events": events})

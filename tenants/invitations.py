"""Invitations: a manager invites an address; the person behind it accepts, then joins.

Nothing about the address's account shows to the inviter: whether or not it has one,
the invitation, the email and the message are the same. The accept page (reached only
through the emailed link) signs the invitee in, or lets a new one choose a password.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from audit.models import AuditEvent
from audit.services import audit_record
from config.errors import BunchError, NotFound
from tenants.models import Invitation, Membership, Tenant
from tenants.services import membership_set, user_get_or_create

INVITATION_LIFETIME = dt.timedelta(days=7)


class InvitationMismatch(BunchError):
    status = 403
    code = "invitation_for_another_address"


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@transaction.atomic
def invitation_create(
    *,
    tenant: Tenant,
    email: str,
    role: str,
    invited_by: User | None,
    now: dt.datetime | None = None,
) -> tuple[Invitation, str]:
    """A new invitation and its token (for the email link only). An earlier open
    invitation of the same address to the same tenant stops working."""
    now = now or timezone.now()
    email = email.strip().lower()
    Invitation.objects.filter(
        tenant=tenant, email__iexact=email, accepted_at__isnull=True, expires_at__gt=now
    ).update(expires_at=now)
    token = secrets.token_urlsafe(32)
    invitation = Invitation.objects.create(
        tenant=tenant,
        email=email,
        role=role,
        token_hash=_hash(token),
        invited_by=invited_by,
        created_at=now,
        expires_at=now + INVITATION_LIFETIME,
    )
    audit_record(
        action=AuditEvent.Action.MEMBER_INVITED,
        tenant=tenant,
        obj=invitation,
        object_label=email,
        detail={"role": role},
    )
    return invitation, token


def invitation_get_open(token: str, *, now: dt.datetime | None = None) -> Invitation:
    """The open invitation behind a link, else `NotFound` (used, expired or never made)."""
    invitation = (
        Invitation.objects.select_related("tenant", "invited_by")
        .filter(token_hash=_hash(token))
        .first()
    )
    if invitation is None or not invitation.is_open(now or timezone.now()):
        raise NotFound("This invitation link has expired or was already used.")
    return invitation


def invitation_has_account(invitation: Invitation) -> bool:
    return User.objects.filter(email__iexact=invitation.email).exists()


def invitations_pending(tenant: Tenant, *, now: dt.datetime | None = None) -> list[Invitation]:
    return list(
        Invitation.objects.filter(
            tenant=tenant, accepted_at__isnull=True, expires_at__gt=now or timezone.now()
        ).order_by("-created_at")
    )


@transaction.atomic
def invitation_accept(*, token: str, user: User, now: dt.datetime | None = None) -> Membership:
    """`user` joins the invitation's tenant with its role, once; only the invited address."""
    now = now or timezone.now()
    invitation = invitation_get_open(token, now=now)
    invitation = Invitation.objects.select_for_update().get(pk=invitation.pk)
    if not invitation.is_open(now):
        raise NotFound("This invitation link has expired or was already used.")
    if (user.email or "").lower() != invitation.email:
        raise InvitationMismatch(
            f"This invitation is for {invitation.email}. Sign in with that address to accept it."
        )
    existing = Membership.objects.filter(tenant=invitation.tenant, user=user).first()
    membership = existing or membership_set(
        tenant=invitation.tenant, user=user, role=invitation.role
    )
    Invitation.objects.filter(pk=invitation.pk).update(accepted_at=now)
    return membership


@transaction.atomic
def invitation_accept_new_user(
    *, token: str, password: str, now: dt.datetime | None = None
) -> Membership:
    """A new person: their account (the invited address, the chosen password), then the
    membership. Refused when the address has an account by now (sign in instead)."""
    invitation = invitation_get_open(token, now=now)
    if invitation_has_account(invitation):
        raise InvitationMismatch("This address has an account: sign in to accept.")
    user = user_get_or_create(email=invitation.email, password=password)
    return invitation_accept(token=token, user=user, now=now)

"""Every write in the tenants domain has a named entry point here."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.contrib.auth.models import User
from django.db import IntegrityError, connection, models, transaction
from django.db.models import F, Value
from django.utils import timezone

from audit.models import AuditEvent
from audit.services import audit_record
from config.errors import BunchError
from config.sql import insert_select
from core.money import from_nanos, to_nanos
from tenants import keycache, roles
from tenants.fallback import FallbackPolicy
from tenants.models import ApiKey, Membership, Plan, QuotaPeriod, Tenant

KEY_NAMESPACE = "bk_live_"
PREFIX_LENGTH = len(KEY_NAMESPACE) + 12


class QuotaExceeded(BunchError):
    status = 402
    code = "quota_exceeded"


class SpendCapExceeded(BunchError):
    status = 402
    code = "spend_cap_exceeded"


# Tenants and members ------------------------------------------------------------------


@transaction.atomic
def tenant_create(*, name: str, slug: str, plan: Plan, owner: User | None = None) -> Tenant:
    tenant = Tenant.objects.create(name=name, slug=slug, plan=plan)
    if owner is not None:
        Membership.objects.create(user=owner, tenant=tenant, role=Membership.Role.OWNER)
    return tenant


@transaction.atomic
def membership_set(*, tenant: Tenant, user: User, role: str) -> Membership:
    previous = Membership.objects.filter(tenant=tenant, user=user).values_list("role", flat=True)
    before = previous.first()
    membership, _ = Membership.objects.update_or_create(
        tenant=tenant, user=user, defaults={"role": role}
    )
    if before is None:
        _audit(AuditEvent.Action.MEMBER_INVITED, tenant, membership, user.email, {"role": role})
    elif before != role:
        detail = {"from": before, "to": role}
        _audit(AuditEvent.Action.MEMBER_ROLE_CHANGED, tenant, membership, user.email, detail)
    return membership


@transaction.atomic
def membership_remove(*, tenant: Tenant, user: User) -> None:
    for membership in Membership.objects.filter(tenant=tenant, user=user):
        _audit(AuditEvent.Action.MEMBER_REMOVED, tenant, membership, user.email)
        membership.delete()


def _audit(
    action: str, tenant: Tenant, obj: Any, label: str, detail: dict[str, Any] | None = None
) -> None:
    audit_record(action=action, tenant=tenant, obj=obj, object_label=label, detail=detail)


def tenant_set_status(*, tenant: Tenant, status: str) -> Tenant:
    Tenant.objects.filter(pk=tenant.pk).update(status=status)
    keycache.forget_all()
    tenant.status = status
    return tenant


def tenant_require_two_factor(*, tenant: Tenant, required: bool) -> Tenant:
    Tenant.objects.filter(pk=tenant.pk).update(require_two_factor=required)
    tenant.require_two_factor = required
    from audit.models import AuditEvent
    from audit.services import audit_record

    audit_record(
        action=AuditEvent.Action.TWO_FACTOR_REQUIRED,
        tenant=tenant,
        obj=tenant,
        detail={"required": required},
    )
    return tenant


def tenant_set_plan(*, tenant: Tenant, plan: Plan) -> Tenant:
    before = Tenant.objects.filter(pk=tenant.pk).values_list("plan__slug", flat=True).first()
    Tenant.objects.filter(pk=tenant.pk).update(plan=plan)
    if before != plan.slug:
        detail = {"from": before, "to": plan.slug}
        _audit(AuditEvent.Action.PLAN_CHANGED, tenant, tenant, plan.name, detail)
    keycache.forget_all()
    tenant.plan = plan
    return tenant


# API keys -------------------------------------------------------------------------------


def _hash_secret(secret: str) -> str:
    # The secret carries 190 bits of entropy, so a fast hash is safe and keeps
    # authentication cheap on the hot path.
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class IssuedKey:
    api_key: ApiKey
    plaintext: str  # shown once, never stored


def api_key_create(
    *,
    tenant: Tenant,
    name: str,
    scopes: list[str] | None = None,
    created_by: User | None = None,
    expires_at: dt.datetime | None = None,
) -> IssuedKey:
    scopes = list(scopes or roles.DEFAULT_SCOPES)
    unknown = sorted(set(scopes) - set(ApiKey.SCOPES))
    if unknown:
        raise BunchError(
            f"Unknown scope(s): {', '.join(unknown)}. Known: {', '.join(ApiKey.SCOPES)}.",
            code="invalid_scope",
        )
    prefix = KEY_NAMESPACE + secrets.token_hex(6)
    secret = secrets.token_urlsafe(24)
    api_key = ApiKey.objects.create(
        tenant=tenant,
        name=name,
        prefix=prefix,
        secret_hash=_hash_secret(secret),
        scopes=scopes,
        created_by=created_by,
        expires_at=expires_at,
    )
    detail = {"scopes": scopes}
    _audit(AuditEvent.Action.API_KEY_CREATED, tenant, api_key, str(api_key), detail)
    return IssuedKey(api_key=api_key, plaintext=f"{prefix}_{secret}")


def api_key_revoke(*, api_key: ApiKey, now: dt.datetime | None = None) -> ApiKey:
    now = now or timezone.now()
    if ApiKey.objects.filter(pk=api_key.pk, revoked_at__isnull=True).update(revoked_at=now):
        _audit(AuditEvent.Action.API_KEY_REVOKED, api_key.tenant, api_key, str(api_key))
    keycache.forget_all()
    api_key.refresh_from_db(fields=["revoked_at"])
    return api_key


def api_key_check(plaintext: str) -> ApiKey | None:
    """The key named by `plaintext` if its secret matches, usable or not."""
    # bk_live_<12 hex>_<secret>; the secret itself may contain "_".
    prefix, sep, secret = (
        plaintext[:PREFIX_LENGTH],
        plaintext[PREFIX_LENGTH:][:1],
        plaintext[PREFIX_LENGTH + 1 :],
    )
    if sep != "_" or not prefix.startswith(KEY_NAMESPACE) or not secret:
        return None
    api_key = keycache.api_key_by_prefix(prefix)
    if api_key is None or not hmac.compare_digest(api_key.secret_hash, _hash_secret(secret)):
        return None
    return api_key


# Key id → when this process last wrote its last_used_at (the key it authenticates with
# may be a remembered copy, keycache, a little older than that write).
_touched: dict[int, dt.datetime] = {}


def api_key_touch(*, api_key: ApiKey, now: dt.datetime) -> None:
    # One write a minute at most, not one per request.
    stale = now - dt.timedelta(minutes=1)
    last = max(
        (t for t in (api_key.last_used_at, _touched.get(api_key.pk)) if t is not None),
        default=None,
    )
    if last is None or last < stale:
        ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
        if len(_touched) >= 10_000:
            _touched.clear()
        _touched[api_key.pk] = now
        last = now
    api_key.last_used_at = last


# Quota ----------------------------------------------------------------------------------


def period_start(now: dt.datetime) -> dt.date:
    """Billing periods are calendar months in UTC."""
    return now.astimezone(dt.UTC).date().replace(day=1)


def period_end(start: dt.date) -> dt.date:
    return (start.replace(day=28) + dt.timedelta(days=4)).replace(day=1)


def quota_period_for(*, tenant: Tenant, now: dt.datetime | None = None) -> QuotaPeriod:
    start = period_start(now or timezone.now())
    # The row exists for all but a tenant's first request of a month: one SELECT, no savepoint.
    period = QuotaPeriod.objects.filter(tenant=tenant, period_start=start).first()
    if period is not None:
        return period
    try:
        with transaction.atomic():
            period, _ = QuotaPeriod.objects.get_or_create(tenant=tenant, period_start=start)
    except IntegrityError:  # created concurrently by another request
        period = QuotaPeriod.objects.get(tenant=tenant, period_start=start)
    return period


@dataclass(frozen=True)
class Reservation:
    period_id: int
    images: int
    nanos: int

    @property
    def amount(self) -> Decimal:
        return from_nanos(self.nanos)


# (tenant id, period start) → QuotaPeriod id, remembered by each process: a reservation is
# then one UPDATE. The UPDATE also names the tenant and the period, so a wrong or stale
# entry (a row rolled back, ids reused in a test database) changes nothing and is refreshed.
_period_ids: dict[tuple[int, dt.date], int] = {}
_PERIOD_IDS_MAX = 10_000


def _remember_period(key: tuple[int, dt.date], period_id: int) -> None:
    if len(_period_ids) >= _PERIOD_IDS_MAX:
        _period_ids.clear()
    _period_ids[key] = period_id


def quota_period_id(*, tenant: Tenant, now: dt.datetime | None = None) -> int:
    """The id of the tenant's current period row (created if need be), remembered."""
    key = (tenant.pk, period_start(now or timezone.now()))
    if key not in _period_ids:
        _remember_period(key, quota_period_for(tenant=tenant, now=now).pk)
    return _period_ids[key]


def quota_reserve_and_insert(
    *,
    tenant: Tenant,
    images: int,
    amount: Decimal,
    period_id: int,
    row: models.Model,
    now: dt.datetime | None = None,
) -> bool:
    """Reserve like `quota_reserve` and insert `row` in one statement, or do neither.

    PostgreSQL's data-modifying CTE; False elsewhere, with nothing done (SQLite takes one
    writer at a time anyway: use `quota_reserve` last in a transaction there). The period
    row is shared by all of a tenant's submits; updated in a
    transaction, it stays locked until the process sends COMMIT, and a busy process (the
    GIL, the CPU) can take milliseconds to do that while every other submit of the tenant
    waits (measured: p50 submit latency of 0.4–1.8 s at 200 submits/s with the workers
    busy). As one statement in autocommit, the row is locked only while the database
    executes and commits it. False when the reservation was refused (or `period_id` is
    not the tenant's current period): nothing was written, and `quota_reserve` says why.
    """
    if connection.vendor != "postgresql":
        return False
    plan = tenant.plan
    nanos = to_nanos(amount)
    quote = connection.ops.quote_name
    quota = quote(QuotaPeriod._meta.db_table)
    target, values, row_params = insert_select(row)
    sql = (
        f"WITH granted AS (UPDATE {quota} SET "
        '"images_reserved" = "images_reserved" + %s, '
        '"spend_reserved_nanos" = "spend_reserved_nanos" + %s '
        'WHERE "id" = %s AND "tenant_id" = %s AND "period_start" = %s '
        'AND "images_used" <= %s - "images_reserved" '
        'AND "spend_used_nanos" <= %s - "spend_reserved_nanos" RETURNING "id") '
        f"INSERT INTO {target} SELECT {values} FROM granted"
    )
    params = [
        images,
        nanos,
        period_id,
        tenant.pk,
        period_start(now or timezone.now()),
        plan.monthly_image_quota - images,
        to_nanos(plan.monthly_spend_cap) - nanos,
        *row_params,
    ]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return bool(cursor.rowcount)


def quota_reserve(
    *,
    tenant: Tenant,
    images: int,
    amount: Decimal,
    now: dt.datetime | None = None,
    period_id: int | None = None,
) -> Reservation:
    """Reserve `images` and `amount` USD, or raise. Exact under any concurrency.

    One conditional UPDATE: the database re-checks the condition against the row as
    committed by any concurrent reservation, so reserved + used never passes the plan.
    The row stays locked until the caller's transaction commits, and every submit of the
    tenant updates it: call this last in the transaction (`period_id` from
    `quota_period_id`), so that the lock is held for as short a time as possible.
    """
    plan = tenant.plan
    start = period_start(now or timezone.now())
    nanos = to_nanos(amount)
    cap_nanos = to_nanos(plan.monthly_spend_cap)

    images_left = Value(plan.monthly_image_quota - images) - F("images_reserved")
    spend_left = Value(cap_nanos - nanos) - F("spend_reserved_nanos")

    def reserve(period_id: int) -> bool:
        return bool(
            QuotaPeriod.objects.filter(pk=period_id, tenant=tenant, period_start=start)
            .filter(images_used__lte=images_left, spend_used_nanos__lte=spend_left)
            .update(
                images_reserved=F("images_reserved") + images,
                spend_reserved_nanos=F("spend_reserved_nanos") + nanos,
            )
        )

    remembered = period_id or _period_ids.get((tenant.pk, start))
    if remembered is not None and reserve(remembered):
        return Reservation(period_id=remembered, images=images, nanos=nanos)
    period = quota_period_for(tenant=tenant, now=now)
    _remember_period((tenant.pk, start), period.pk)
    # Tried again even with the same id: the remembered row may have been rolled back and
    # created anew under that id (SQLite reuses the ids of rolled-back rows).
    if reserve(period.pk):
        return Reservation(period_id=period.pk, images=images, nanos=nanos)
    period.refresh_from_db()
    remaining = plan.monthly_image_quota - period.images_used - period.images_reserved
    if remaining < images:
        raise QuotaExceeded(
            f"This request needs {images} image(s) but only {max(remaining, 0)} remain in "
            f"your plan's quota of {plan.monthly_image_quota} for this period. "
            "Upgrade the plan or wait for the next period.",
            fields=None,
        )
    left = from_nanos(cap_nanos - period.spend_used_nanos - period.spend_reserved_nanos)
    raise SpendCapExceeded(
        f"This request may cost up to ${amount:.4f} but only ${max(left, Decimal(0)):.4f} "
        f"remain under your spend cap of ${plan.monthly_spend_cap} for this period."
    )


def quota_commit(*, period_id: int, images: int, reserved_nanos: int, spent: Decimal) -> None:
    """Turn part of a reservation into usage: `images` made at an actual cost of `spent`."""
    QuotaPeriod.objects.filter(pk=period_id).update(
        images_reserved=F("images_reserved") - images,
        images_used=F("images_used") + images,
        spend_reserved_nanos=F("spend_reserved_nanos") - reserved_nanos,
        spend_used_nanos=F("spend_used_nanos") + to_nanos(spent),
    )


def quota_release(*, period_id: int, images: int, nanos: int) -> None:
    """Give back the part of a reservation that will not be used."""
    if images or nanos:
        QuotaPeriod.objects.filter(pk=period_id).update(
            images_reserved=F("images_reserved") - images,
            spend_reserved_nanos=F("spend_reserved_nanos") - nanos,
        )


# Users ----------------------------------------------------------------------------------


def user_get_or_create(*, email: str, password: str | None = None) -> User:
    user = User.objects.filter(email__iexact=email).first()
    if user is None:
        user = User.objects.create_user(username=email.lower(), email=email.lower())
        if password:
            user.set_password(password)
        else:
            user.set_unusable_password()
        user.save()
    return user


# Settings ---------------------------------------------------------------------------------


@transaction.atomic
def tenant_fallback_set(*, tenant: Tenant, policy: FallbackPolicy | None) -> Tenant:
    """Set (or, with None, remove) the tenant's fallback policy."""
    tenant.fallback_policy = policy.as_json() if policy is not None else None
    tenant.save(update_fields=["fallback_policy"])
    return tenant

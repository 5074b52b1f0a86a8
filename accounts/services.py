"""Two-factor sign-in (TOTP) for dashboard users: set up, confirm, check, turn off."""

from __future__ import annotations

import hashlib
import secrets
import time

from django.contrib.auth.models import AnonymousUser, User
from django.db import transaction
from django.utils import timezone

from accounts.models import RecoveryCode, TwoFactor
from audit.models import AuditEvent
from audit.services import audit_record
from config.errors import BunchError
from core import totp

RECOVERY_CODES = 10
ISSUER = "Bunch"


class TwoFactorError(BunchError):
    status = 400
    code = "invalid_two_factor_code"


def _hash(code: str) -> str:
    return hashlib.sha256("".join(code.split()).lower().encode()).hexdigest()


def two_factor_active(user: User | AnonymousUser) -> bool:
    if not user.is_authenticated:
        return False
    return TwoFactor.objects.filter(user=user, confirmed_at__isnull=False).exists()


@transaction.atomic
def two_factor_begin(*, user: User) -> TwoFactor:
    """A fresh secret to show once (as a QR code and as text); not active until confirmed."""
    if two_factor_active(user):
        raise BunchError("Two-factor sign-in is already on.", code="two_factor_on", status=409)
    device, _ = TwoFactor.objects.update_or_create(
        user=user, defaults={"secret": totp.new_secret(), "confirmed_at": None, "last_step": 0}
    )
    return device


def provisioning_uri(device: TwoFactor) -> str:
    return totp.provisioning_uri(device.secret, account=device.user.email, issuer=ISSUER)


def _accept(device: TwoFactor, code: str, now: float) -> bool:
    """A current code not used before: the step only moves forward, in one UPDATE, so a
    code seen by an eavesdropper (or sent twice) is refused the second time."""
    step = totp.matching_step(device.secret, code, unix_time=now)
    if step is None:
        return False
    return bool(TwoFactor.objects.filter(pk=device.pk, last_step__lt=step).update(last_step=step))


@transaction.atomic
def two_factor_confirm(*, user: User, code: str, now: float | None = None) -> list[str]:
    """Turn it on with a first code from the app; returns the recovery codes, shown once."""
    device = TwoFactor.objects.select_for_update().filter(user=user).first()
    if device is None or device.active:
        raise BunchError("Start two-factor setup first.", code="two_factor_not_started")
    if not _accept(device, code, time.time() if now is None else now):
        raise TwoFactorError("That code is not right. Check the app's current code.")
    TwoFactor.objects.filter(pk=device.pk).update(confirmed_at=timezone.now())
    codes = recovery_codes_renew(user=user)
    audit_record(action=AuditEvent.Action.TWO_FACTOR_ENABLED, actor=user, obj=user)
    return codes


def recovery_codes_renew(*, user: User) -> list[str]:
    """Ten new single-use recovery codes; the old ones stop working."""
    codes = [f"{secrets.token_hex(4)}-{secrets.token_hex(4)}" for _ in range(RECOVERY_CODES)]
    RecoveryCode.objects.filter(user=user).delete()
    RecoveryCode.objects.bulk_create(RecoveryCode(user=user, code_hash=_hash(c)) for c in codes)
    return codes


def two_factor_check(*, user: User, code: str, now: float | None = None) -> bool:
    """A current app code, or an unused recovery code (then used up)."""
    device = TwoFactor.objects.filter(user=user, confirmed_at__isnull=False).first()
    if device is None:
        return False
    if _accept(device, code, time.time() if now is None else now):
        return True
    used = RecoveryCode.objects.filter(
        user=user, code_hash=_hash(code), used_at__isnull=True
    ).update(used_at=timezone.now())
    return bool(used)


@transaction.atomic
def two_factor_disable(*, user: User, code: str, now: float | None = None) -> None:
    if not two_factor_check(user=user, code=code, now=now):
        raise TwoFactorError("That code is not right; two-factor sign-in stays on.")
    TwoFactor.objects.filter(user=user).delete()
    RecoveryCode.objects.filter(user=user).delete()
    audit_record(action=AuditEvent.Action.TWO_FACTOR_DISABLED, actor=user, obj=user)


def recovery_codes_left(user: User) -> int:
    return RecoveryCode.objects.filter(user=user, used_at__isnull=True).count()

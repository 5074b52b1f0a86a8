"""Who may do what: one map from role to actions, one from API-key scope to actions.

The dashboard (`tenants.views.tenant_page(action=…)`) and the API
(`tenants.permissions.HasActiveTenant`, a view's `required_action`) both ask `allows()`,
so a signed-in member is refused the same things on every surface. Plain Python.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum


class Action(StrEnum):
    READ = "read"  # jobs, images, batches, series (storyboards), templates, the gallery
    # submit, edit, cancel; upload images; start batches; start, cancel and regenerate
    # series (their frames are jobs, so whoever may generate may run a storyboard)
    GENERATE = "generate"
    TEMPLATES_MANAGE = "templates.manage"  # write and delete prompt templates
    USAGE_READ = "usage.read"  # usage figures, the invoice estimate
    BILLING_MANAGE = "billing.manage"  # Stripe Checkout and the customer portal
    WEBHOOKS_MANAGE = "webhooks.manage"  # endpoints, their secrets, delivery logs
    API_KEYS_MANAGE = "api_keys.manage"
    MEMBERS_MANAGE = "members.manage"
    AUDIT_READ = "audit.read"  # the workspace's audit log


OWNER, ADMIN, MEMBER = "owner", "admin", "member"
ROLES = (OWNER, ADMIN, MEMBER)

ROLE_ACTIONS: dict[str, frozenset[Action]] = {
    OWNER: frozenset(Action),
    ADMIN: frozenset(Action),
    MEMBER: frozenset({Action.READ, Action.GENERATE}),
}

# What an API key's scopes let it do. Keys never manage members; a key manages keys only
# with `keys:manage`, which no key has unless a manager gives it.
SCOPE_ACTIONS: dict[str, frozenset[Action]] = {
    "read": frozenset({Action.READ}),
    # Template writes were a `generate` key's before they were a manager's action in the
    # dashboard; keys keep them (keys are made by managers).
    "generate": frozenset({Action.GENERATE, Action.TEMPLATES_MANAGE}),
    "billing": frozenset({Action.USAGE_READ, Action.BILLING_MANAGE}),
    "webhooks": frozenset({Action.WEBHOOKS_MANAGE}),
    "keys:manage": frozenset({Action.API_KEYS_MANAGE}),
}
SCOPES = tuple(SCOPE_ACTIONS)
DEFAULT_SCOPES = ("generate", "read")

_WHAT = {
    Action.READ: "read this workspace's work",
    Action.GENERATE: "generate images",
    Action.TEMPLATES_MANAGE: "manage prompt templates",
    Action.USAGE_READ: "see usage and billing",
    Action.BILLING_MANAGE: "manage billing",
    Action.WEBHOOKS_MANAGE: "manage webhooks",
    Action.API_KEYS_MANAGE: "manage API keys",
    Action.MEMBERS_MANAGE: "manage members",
    Action.AUDIT_READ: "read the audit log",
}


def role_allows(role: str, action: Action) -> bool:
    return action in ROLE_ACTIONS.get(role, frozenset())


def scopes_allow(scopes: Iterable[str], action: Action) -> bool:
    return any(action in SCOPE_ACTIONS.get(scope, frozenset()) for scope in scopes)


def scope_for(action: Action) -> str | None:
    """The scope a key needs for `action` (None: no key may)."""
    return next((s for s, actions in SCOPE_ACTIONS.items() if action in actions), None)


def refusal_for_role(action: Action) -> str:
    roles = [role for role in ROLES if role_allows(role, action)]
    names = " and ".join(f"{role}s" for role in roles) or "nobody"
    return f"Only {names} of this workspace can {_WHAT[action]}."


def refusal_for_scopes(action: Action) -> str:
    scope = scope_for(action)
    if scope is None:
        return f"API keys cannot {_WHAT[action]}; use the dashboard."
    return f"This API key lacks the {scope!r} scope, needed to {_WHAT[action]}."

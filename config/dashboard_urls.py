"""Dashboard pages (server-rendered) and the sign-in flow.

The auth views sit outside the ``dashboard`` namespace because settings and Django's own
auth views name them bare (``LOGIN_URL = "login"``, ``password_reset_confirm``); every
page lives under ``dashboard:``.
"""

from __future__ import annotations

from django.contrib.auth import views as auth_views
from django.urls import URLPattern, include, path

from accounts import views as account_views
from billing import views as billing_views
from generation import views as generation_views
from generation.conversations import views as conversation_views
from tenants import lockout
from tenants import views as tenant_views
from webhooks import views as webhook_views

pages: list[URLPattern] = [
    path("", tenant_views.home, name="home"),
    path("switch/", tenant_views.tenant_switch, name="tenant-switch"),
    path("generate/", generation_views.generate, name="generate"),
    path("gallery/", generation_views.gallery, name="gallery"),
    path("gallery/download/", generation_views.gallery_download, name="gallery-download"),
    path("images/<str:image_id>/", generation_views.image_detail, name="image"),
    path(
        "images/<str:image_id>/conversation/",
        conversation_views.conversation_start,
        name="conversation-start",
    ),
    path(
        "conversations/<str:conversation_id>/turns/",
        conversation_views.conversation_turn,
        name="conversation-turn",
    ),
    path("jobs/", generation_views.jobs, name="jobs"),
    path("jobs/<str:job_id>/retry/", generation_views.job_retry, name="job-retry"),
    path("usage/", billing_views.usage, name="usage"),
    path("api-keys/", tenant_views.api_keys, name="api-keys"),
    path("api-keys/<int:key_id>/revoke/", tenant_views.api_key_revoke, name="api-key-revoke"),
    path("webhooks/", webhook_views.webhook_list, name="webhooks"),
    path("webhooks/<uuid:endpoint_id>/", webhook_views.webhook_detail, name="webhook"),
    path(
        "webhooks/<uuid:endpoint_id>/rotate/",
        webhook_views.webhook_rotate,
        name="webhook-rotate",
    ),
    path(
        "webhooks/<uuid:endpoint_id>/toggle/",
        webhook_views.webhook_toggle,
        name="webhook-toggle",
    ),
    path(
        "webhooks/<uuid:endpoint_id>/delete/",
        webhook_views.webhook_delete,
        name="webhook-delete",
    ),
    path(
        "webhooks/<uuid:endpoint_id>/deliveries/<uuid:delivery_id>/redeliver/",
        webhook_views.webhook_redeliver,
        name="webhook-redeliver",
    ),
    path("members/", tenant_views.members, name="members"),
    path("members/two-factor/", tenant_views.two_factor_policy, name="two-factor-policy"),
    path("settings/fallback/", tenant_views.fallback_settings, name="fallback"),
    path("members/<int:membership_id>/role/", tenant_views.member_role, name="member-role"),
    path("members/<int:membership_id>/remove/", tenant_views.member_remove, name="member-remove"),
    path("audit/", tenant_views.audit_log, name="audit"),
]

auth = [
    path("login/", lockout.LoginView.as_view(), name="login"),
    path("login/verify/", account_views.two_factor_verify, name="login-verify"),
    path("account/two-factor/", account_views.two_factor_settings, name="account-two-factor"),
    path("invitations/<str:token>/", tenant_views.invitation_accept, name="invitation"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path(
        "password-reset/",
        lockout.rate_limited("pwreset", per_minute=5, field="email")(
            auth_views.PasswordResetView.as_view()
        ),
        name="password_reset",
    ),
    path(
        "password-reset/sent/",
        auth_views.PasswordResetDoneView.as_view(),
        name="password_reset_done",
    ),
    path(  # also where an invited member sets a password (tenants/forms.py)
        "password-reset/<uidb64>/<token>/",
        lockout.rate_limited("pwconfirm", per_minute=10)(
            auth_views.PasswordResetConfirmView.as_view()
        ),
        name="password_reset_confirm",
    ),
    path(
        "password-reset/done/",
        auth_views.PasswordResetCompleteView.as_view(),
        name="password_reset_complete",
    ),
]

urlpatterns = [*auth, path("", include((pages, "dashboard")))]

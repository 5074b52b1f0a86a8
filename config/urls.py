from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from billing.urls import api_urlpatterns as billing_api
from config import views
from ops import views as ops_views
from tenants.lockout import AdminLoginForm, AdminLoginView

admin.site.login_form = AdminLoginForm  # the sign-in lock-out applies to operators too

handler400 = "config.errors.json_or_html_400"
handler403 = "config.errors.json_or_html_403"
handler404 = "config.errors.json_or_html_404"
handler500 = "config.errors.json_or_html_500"

api_v1 = [
    path("", include("tenants.urls")),
    path("", include("generation.urls")),
    path("", include("webhooks.urls")),
    path("", include(billing_api)),
    path("", include("series.urls")),
    path("", include("batches.urls")),
]

urlpatterns = [
    path("healthz", views.healthz, name="healthz"),
    path("favicon.ico", views.favicon, name="favicon"),
    path("readyz", ops_views.readyz, name="readyz"),
    path("metrics", ops_views.metrics, name="metrics"),
    path("admin/status/", ops_views.status_page, name="ops-status"),
    path("api/v1/", include((api_v1, "api"), namespace="api")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="schema"), name="api-docs"),
    # Before the admin's own: operators sign in through the lock-out and the second factor.
    path("admin/login/", AdminLoginView.as_view(), name="admin-login"),
    path("admin/", admin.site.urls),
    path("billing/", include("billing.urls")),
    path("", include("config.dashboard_urls")),
    path("", include("series.dashboard_urls")),
    path("", include("batches.dashboard_urls")),
    re_path(r"^api/", views.api_not_found),
]

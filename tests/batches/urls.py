"""The project's URLs with the batch routes mounted, whether or not config/urls.py has them."""

from django.urls import include, path

from config import urls as project

handler400 = project.handler400
handler403 = project.handler403
handler404 = project.handler404
handler500 = project.handler500


def _mounted(patterns: list, name: str) -> bool:  # type: ignore[type-arg]
    return any(getattr(p, "urlconf_name", None) == name for p in patterns)


api_v1 = list(project.api_v1)
if not _mounted(api_v1, "batches.urls"):
    api_v1.append(path("", include("batches.urls")))

urlpatterns = [
    path("api/v1/", include((api_v1, "api"), namespace="api")),
    *project.urlpatterns,
]
if not _mounted(project.urlpatterns, "batches.dashboard_urls"):
    urlpatterns.insert(0, path("", include("batches.dashboard_urls")))
if not _mounted(project.urlpatterns, "config.dashboard_urls"):
    urlpatterns.insert(0, path("", include("config.dashboard_urls")))

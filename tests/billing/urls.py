"""The project's URLs plus the billing routes, until config/urls.py mounts them itself."""

from django.urls import include, path

from billing.urls import api_urlpatterns
from config import urls as project

handler404 = project.handler404
handler500 = project.handler500

api_v1 = [*project.api_v1, path("", include(api_urlpatterns))]

urlpatterns = [
    path("billing/", include("billing.urls")),
    path("api/v1/", include((api_v1, "api"), namespace="api")),
    *project.urlpatterns,
]

"""The project's URLs with the dashboard mounted, whether or not config/urls.py has it yet."""

from config import urls as project

handler404 = project.handler404
handler500 = project.handler500

urlpatterns = list(project.urlpatterns)
if not any(getattr(p, "urlconf_name", None) == "config.dashboard_urls" for p in urlpatterns):
    from django.urls import include, path

    urlpatterns.insert(0, path("", include("config.dashboard_urls")))

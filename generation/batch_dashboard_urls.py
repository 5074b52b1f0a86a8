"""Dashboard pages of batches (mounted at the site root, namespace `batches`)."""

from django.urls import URLPattern

app_name = "batches"
urlpatterns: list[URLPattern] = []

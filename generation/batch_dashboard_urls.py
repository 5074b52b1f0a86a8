"""Dashboard pages of batches (mounted at the site root, namespace `batches`)."""

from django.urls import path

from generation import batch_views

app_name = "batches"
urlpatterns = [
    path("batches/", batch_views.batch_list, name="list"),
    path("batches/<str:batch_id>/", batch_views.batch_detail, name="detail"),
]

"""Dashboard pages of batches (mounted at the site root, namespace `batches`)."""

from django.urls import path

from batches import views

app_name = "batches"
urlpatterns = [
    path("batches/", views.batch_list, name="list"),
    path("batches/<str:batch_id>/", views.batch_detail, name="detail"),
]

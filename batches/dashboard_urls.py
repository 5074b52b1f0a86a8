"""Dashboard pages of batches and templates (mounted at the site root, namespace `batches`)."""

from django.urls import path

from batches import views

app_name = "batches"
urlpatterns = [
    path("batches/", views.batch_list, name="list"),
    path("batches/new/", views.batch_new, name="new"),
    path("batches/new/<str:draft_id>/", views.batch_check, name="check"),
    path("batches/new/<str:draft_id>/submit/", views.batch_submit, name="submit"),
    path("batches/<str:batch_id>/", views.batch_detail, name="detail"),
    path("batches/<str:batch_id>/cancel/", views.batch_cancel, name="cancel"),
    path("batches/<str:batch_id>/retry/", views.batch_retry, name="retry"),
    path("templates/", views.template_list, name="templates"),
    path("templates/new/", views.template_new, name="template-new"),
    path("templates/<str:template_id>/", views.template_edit, name="template-edit"),
    path("templates/<str:template_id>/delete/", views.template_delete, name="template-delete"),
]

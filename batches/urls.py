"""REST routes of batches and prompt templates (mounted under /api/v1/)."""

from django.urls import path

from batches import api
from generation.streams import event_stream

urlpatterns = [
    path("batches", api.BatchListView.as_view(), name="batch-list"),
    path("batches/<str:batch_id>", api.BatchDetailView.as_view(), name="batch-detail"),
    path("batches/<str:batch_id>/items", api.BatchItemsView.as_view(), name="batch-items"),
    path(
        "batches/<str:batch_id>/events",
        event_stream(api.BatchEventsView.as_view()),
        name="batch-events",
    ),
    path("batches/<str:batch_id>/cancel", api.BatchCancelView.as_view(), name="batch-cancel"),
    path(
        "batches/<str:batch_id>/results.csv",
        api.BatchResultsCsvView.as_view(),
        name="batch-results-csv",
    ),
    path(
        "batches/<str:batch_id>/results.zip",
        api.BatchResultsZipView.as_view(),
        name="batch-results-zip",
    ),
    path("templates", api.TemplateListView.as_view(), name="template-list"),
    path("templates/<str:template_id>", api.TemplateDetailView.as_view(), name="template-detail"),
    path(
        "templates/<str:template_id>/preview",
        api.TemplatePreviewView.as_view(),
        name="template-preview",
    ),
]

"""REST routes of series (mounted under /api/v1/)."""

from django.urls import path

from generation.streams import event_stream
from series import api

urlpatterns = [
    path("series", api.SeriesListView.as_view(), name="series-list"),
    path("series/<str:series_id>", api.SeriesDetailView.as_view(), name="series-detail"),
    path(
        "series/<str:series_id>/events",
        event_stream(api.SeriesEventsView.as_view()),
        name="series-events",
    ),
    path("series/<str:series_id>/cancel", api.SeriesCancelView.as_view(), name="series-cancel"),
    path(
        "series/<str:series_id>/frames/<int:index>/regenerate",
        api.FrameRegenerateView.as_view(),
        name="series-frame-regenerate",
    ),
    path(
        "series/<str:series_id>/results.zip",
        api.SeriesResultsZipView.as_view(),
        name="series-results-zip",
    ),
]

"""Dashboard pages of series (mounted at the site root, namespace `series`)."""

from django.urls import path

from series import views

app_name = "series"
urlpatterns = [
    path("storyboards/", views.storyboard_list, name="list"),
    path("storyboards/new/", views.storyboard_new, name="new"),
    path("storyboards/<str:series_id>/", views.storyboard_detail, name="detail"),
    path("storyboards/<str:series_id>/cancel/", views.storyboard_cancel, name="cancel"),
    path(
        "storyboards/<str:series_id>/frames/<int:index>/regenerate/",
        views.storyboard_regenerate,
        name="regenerate",
    ),
]

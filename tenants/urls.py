from django.urls import path

from tenants import api

urlpatterns = [
    path("me", api.MeView.as_view(), name="me"),
    path("api-keys", api.ApiKeyListView.as_view(), name="api-key-list"),
    path("api-keys/<str:key_id>", api.ApiKeyDetailView.as_view(), name="api-key-detail"),
    path("settings/fallback", api.FallbackSettingsView.as_view(), name="settings-fallback"),
]

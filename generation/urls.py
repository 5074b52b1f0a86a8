from django.urls import path

from generation import api
from generation.conversations import api as conversations
from generation.streams import event_stream, with_wait

urlpatterns = [
    path("generations", with_wait(api.GenerationListView.as_view()), name="generation-list"),
    path("generations/<str:job_id>", api.GenerationDetailView.as_view(), name="generation-detail"),
    path(
        "generations/<str:job_id>/events",
        event_stream(api.GenerationEventsView.as_view()),
        name="generation-events",
    ),
    path(
        "generations/<str:job_id>/cancel",
        api.GenerationCancelView.as_view(),
        name="generation-cancel",
    ),
    path("images", api.ImageUploadView.as_view(), name="image-upload"),
    path("images/<str:image_id>", api.ImageDetailView.as_view(), name="image-detail"),
    path("images/<str:image_id>/content", api.ImageContentView.as_view(), name="image-content"),
    path(
        "images/<str:image_id>/thumbnail",
        api.ImageThumbnailView.as_view(),
        name="image-thumbnail",
    ),
    path(
        "images/<str:image_id>/provenance",
        api.ImageProvenanceView.as_view(),
        name="image-provenance",
    ),
    path(
        "images/<str:image_id>/edits",
        with_wait(api.ImageEditView.as_view()),
        name="image-edits",
    ),
    path(
        "images/<str:image_id>/conversations",
        conversations.ConversationStartView.as_view(),
        name="image-conversations",
    ),
    path("conversations", conversations.ConversationListView.as_view(), name="conversation-list"),
    path(
        "conversations/<str:conversation_id>",
        conversations.ConversationDetailView.as_view(),
        name="conversation-detail",
    ),
    path(
        "conversations/<str:conversation_id>/turns",
        with_wait(conversations.ConversationTurnListView.as_view()),
        name="conversation-turns",
    ),
    path(
        "conversations/<str:conversation_id>/turns/<str:turn_id>",
        conversations.ConversationTurnDetailView.as_view(),
        name="conversation-turn",
    ),
]

"""The image page's "Edit conversation" panel: start one, send turns, see each turn's
status, image and input, and the next turn's estimate; refusals said in words."""

from __future__ import annotations

from typing import Any

from generation.conversations import history as hist
from generation.models import Conversation, ConversationTurn, Image
from tests.dashboard.conftest import signed_in, uploaded
from tests.plugins.actors import Actor
from tests.plugins.gemini import GeminiEmulator


def test_a_member_starts_a_conversation_and_sends_turns_from_the_image_page(
    inline_worker: GeminiEmulator, member: Actor
) -> None:
    source = uploaded(member.tenant)
    client = signed_in(member)
    page = client.get(f"/images/{source.pk}/").content.decode()
    assert 'data-testid="conversation-start"' in page

    started = client.post(f"/images/{source.pk}/conversation/", {"model": "lite"})
    assert started.status_code == 302 and started["Location"].endswith("#conversation")
    conversation = Conversation.objects.get()
    for prompt in ("make it a poster", "now make it dusk"):
        sent = client.post(
            f"/conversations/{conversation.pk}/turns/", {"prompt": prompt, "image": source.pk}
        )
        assert sent.status_code == 302

    page = client.get(f"/images/{source.pk}/").content.decode()
    assert page.count('data-testid="turn"') == 2
    assert page.count('data-testid="turn-image"') == 2
    assert "now make it dusk" in page and "badge-succeeded" in page
    assert "data-live-job" not in page  # nothing left to follow
    # The estimate shows the history the next turn sends: the source and two images.
    assert "sends 3 images and" in page
    last = Image.objects.get(job__conversation_turn__index=2)
    # The last turn's image shows the same conversation.
    assert 'data-testid="turns"' in client.get(f"/images/{last.pk}/").content.decode()


def test_a_running_turn_is_followed_live_and_blocks_the_next(
    member: Actor, django_capture_on_commit_callbacks: Any
) -> None:
    source = uploaded(member.tenant)
    client = signed_in(member)
    client.post(f"/images/{source.pk}/conversation/", {})
    conversation = Conversation.objects.get()
    with django_capture_on_commit_callbacks(execute=False):
        client.post(f"/conversations/{conversation.pk}/turns/", {"prompt": "dusk"})
        refused = client.post(
            f"/conversations/{conversation.pk}/turns/", {"prompt": "again"}, follow=True
        )
    body = refused.content.decode()
    assert "still queued" in body  # the refusal, in words
    turn = ConversationTurn.objects.get()
    assert f'data-live-job="/api/v1/generations/{turn.job_id}"' in body
    assert 'data-testid="turn-submit" disabled' in body


def test_a_full_history_says_so_instead_of_offering_a_prompt_box(member: Actor) -> None:
    source = uploaded(member.tenant)
    client = signed_in(member)
    client.post(f"/images/{source.pk}/conversation/", {})
    conversation = Conversation.objects.get()
    # A history at the limit (as 60 turns would leave it): images the model returned.
    part = {"inline_data": {"mime_type": "image/png", hist.IMAGE_REF: str(source.pk)}}
    Conversation.objects.filter(pk=conversation.pk).update(
        history=[{"role": "model", "parts": [part] * 59}]
    )
    page = client.get(f"/images/{source.pk}/").content.decode()
    assert 'data-testid="conversation-full"' in page and 'id="turn-form"' not in page
    refused = client.post(
        f"/conversations/{conversation.pk}/turns/", {"prompt": "more"}, follow=True
    )
    assert "65,536" in refused.content.decode()
    assert not ConversationTurn.objects.exists()


def test_operators_read_a_conversation_and_its_turns_in_the_admin(
    member: Actor, django_capture_on_commit_callbacks: Any
) -> None:
    from django.contrib.auth.models import User
    from django.test import Client

    source = uploaded(member.tenant)
    client = signed_in(member)
    client.post(f"/images/{source.pk}/conversation/", {})
    conversation = Conversation.objects.get()
    with django_capture_on_commit_callbacks(execute=False):
        client.post(f"/conversations/{conversation.pk}/turns/", {"prompt": "now make it dusk"})
    operator = Client()
    operator.force_login(User.objects.create_superuser("op", "op@bunch.test", "pw-op-123456"))
    page = operator.get(f"/admin/generation/conversation/{conversation.pk}/change/")
    assert page.status_code == 200
    assert "now make it dusk" in page.content.decode()
    assert operator.get("/admin/generation/conversation/add/").status_code == 403

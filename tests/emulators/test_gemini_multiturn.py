"""Multi-turn editing against the emulator through google-genai's chats: thought
signatures on the model's parts, refusal of a history sent back without them, and the
request log that records each call's contents as received."""

from __future__ import annotations

from typing import Any

import pytest
from google.genai import errors, types

from tests.emulators.test_gemini_conformance import LITE, sdk


def _config() -> types.GenerateContentConfig:
    return types.GenerateContentConfig(
        response_modalities=["TEXT", "IMAGE"],
        image_config=types.ImageConfig(aspect_ratio="1:1", image_size="1K"),
    )


def test_lite_signs_the_first_part_and_every_image_part_of_its_answers(gemini: Any) -> None:
    response = sdk(gemini).models.generate_content(
        model=LITE, contents="a red bicycle", config=_config()
    )
    parts = response.parts or []
    assert [bool(p.text) for p in parts] == [True, False]  # text, then the image
    assert all(p.thought_signature for p in parts)


def test_a_chat_sends_its_history_back_and_the_emulator_logs_it_as_received(
    gemini: Any,
) -> None:
    chat = sdk(gemini).chats.create(model=LITE, config=_config())
    chat.send_message("a red bicycle")
    second = chat.send_message("now make it dusk")
    assert any(p.inline_data for p in second.parts or [])

    first_call, second_call = gemini.requests()
    assert [c["role"] for c in second_call["contents"]] == ["user", "model", "user"]
    answered = first_call["answer"]["parts"]
    sent = second_call["contents"][1]["parts"]
    assert [p.get("text") for p in sent] == [p.get("text") for p in answered]
    assert [p["inlineData"]["dataSha256"] for p in sent if "inlineData" in p] == [
        p["inlineData"]["dataSha256"] for p in answered if "inlineData" in p
    ]
    assert all(p.get("thoughtSignature") or p.get("thought_signature") for p in sent)
    # The model's image counts as input of the second call.
    usage = second.usage_metadata
    assert usage is not None
    image_in = [d for d in usage.prompt_tokens_details or [] if d.modality == "IMAGE"]
    assert image_in[0].token_count == 1120


@pytest.mark.parametrize("which", ["image", "text"])
def test_a_history_whose_model_parts_lack_their_signature_is_refused_with_400(
    gemini: Any, which: str
) -> None:
    client = sdk(gemini)
    first = client.models.generate_content(model=LITE, contents="a red bicycle", config=_config())
    assert first.candidates and first.candidates[0].content
    model_turn = first.candidates[0].content.model_copy(deep=True)
    for part in model_turn.parts or []:
        if (which == "image") == bool(part.inline_data):
            part.thought_signature = None
    history = [types.Content(role="user", parts=[types.Part(text="a red bicycle")]), model_turn]
    with pytest.raises(errors.ClientError) as caught:
        client.models.generate_content(
            model=LITE,
            contents=[*history, types.Content(role="user", parts=[types.Part(text="dusk")])],
            config=_config(),
        )
    assert caught.value.code == 400
    assert "thought signature" in (caught.value.message or "")
    assert len(gemini.requests()) == 2  # the refused call is logged too


def test_a_tampered_signature_is_refused_and_an_intact_history_accepted(gemini: Any) -> None:
    client = sdk(gemini)
    first = client.models.generate_content(model=LITE, contents="a kite", config=_config())
    assert first.candidates and first.candidates[0].content
    intact = first.candidates[0].content
    tampered = intact.model_copy(deep=True)
    image_part = next(p for p in tampered.parts or [] if p.inline_data)
    image_part.thought_signature = b"\x00" * 32
    user = types.Content(role="user", parts=[types.Part(text="a kite")])
    again = types.Content(role="user", parts=[types.Part(text="at night")])
    ok = client.models.generate_content(
        model=LITE, contents=[user, intact, again], config=_config()
    )
    assert any(p.inline_data for p in ok.parts or [])
    with pytest.raises(errors.ClientError):
        client.models.generate_content(
            model=LITE, contents=[user, tampered, again], config=_config()
        )


def test_reset_empties_the_request_log(gemini: Any) -> None:
    sdk(gemini).models.generate_content(model=LITE, contents="a kite", config=_config())
    assert len(gemini.requests()) == 1
    gemini.reset()
    assert gemini.requests() == []


def test_calls_are_recorded_only_when_asked(gemini: Any) -> None:
    import urllib.error

    gemini.configure(record_calls=False)
    try:
        sdk(gemini).models.generate_content(model=LITE, contents="a kite", config=_config())
        with pytest.raises(urllib.error.HTTPError) as refused:
            gemini.requests()
        assert refused.value.code == 404
    finally:
        gemini.configure(record_calls=True)
    assert gemini.requests() == []  # the unrecorded call left nothing behind

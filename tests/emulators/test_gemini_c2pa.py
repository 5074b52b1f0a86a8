"""The emulator's C2PA Content Credentials, read back through the real c2pa SDK (by way of
the product's reader, `generation.provenance`)."""

from __future__ import annotations

import asyncio
import base64
import io
import time
import urllib.request
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer
from google.genai import types
from PIL import Image

from emulators.gemini import credentials
from emulators.gemini.__main__ import parse_args
from emulators.gemini.server import Emulator, Settings
from generation.provenance import credentials_read
from tests.emulators.test_gemini_batches import request, wait_done
from tests.emulators.test_gemini_conformance import LITE, image_config, sdk

TRAINED = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"


def generate(gemini: Any, prompt: str) -> bytes:
    response = sdk(gemini).models.generate_content(
        model=LITE, contents=prompt, config=image_config("16:9")
    )
    return bytes(response.parts[-1].inline_data.data)


def trust(settings: Any, root: Path | str | None) -> None:
    settings.C2PA_TRUST_ANCHORS = str(root or "")


def test_an_image_reads_as_trusted_under_the_emulators_root_like_a_google_image(
    gemini: Any, settings: Any
) -> None:
    trust(settings, gemini.c2pa_root)
    found = credentials_read(generate(gemini, "banner 'Summer sale'"), "image/png")
    assert found.state == "trusted"
    assert found.validation_codes == []
    assert found.ai_generated is True
    assert found.generator.startswith("Google C2PA Core Generator Library")
    assert found.issuer.startswith("Google LLC")
    assert found.signer.startswith("Google Media Processing Services")
    assert [(a["action"], a["description"], a["digital_source_type"]) for a in found.actions] == [
        ("c2pa.created", "Created by Google Generative AI.", TRAINED),
        ("c2pa.edited", "Applied imperceptible SynthID watermark.", TRAINED),
    ]
    assert found.actions[0]["software_agent"] == LITE


def test_without_the_root_on_the_trust_list_the_image_reads_as_valid_unrecognized(
    gemini: Any, settings: Any
) -> None:
    trust(settings, None)
    found = credentials_read(generate(gemini, "banner 'Summer sale'"), "image/png")
    assert found.state == "valid"
    assert found.validation_codes == ["signingCredential.untrusted"]


def test_the_root_is_published_and_written_where_asked(gemini: Any) -> None:
    with urllib.request.urlopen(gemini.base_url + "/_emulator/c2pa/root.pem", timeout=10) as r:
        served = r.read()
    assert served.startswith(b"-----BEGIN CERTIFICATE-----")
    assert served == gemini.c2pa_root.read_bytes()


def test_tampered_trigger_gives_an_invalid_manifest_on_a_still_readable_image(
    gemini: Any, settings: Any
) -> None:
    trust(settings, gemini.c2pa_root)
    data = generate(gemini, "banner 'Summer sale' [[c2pa:tampered]]")
    found = credentials_read(data, "image/png")
    assert found.state == "invalid"
    assert "assertion.dataHash.mismatch" in found.validation_codes
    with Image.open(io.BytesIO(data)) as img:
        img.load()
        assert img.size == (1376, 768)


def test_none_trigger_gives_an_image_without_credentials(gemini: Any, settings: Any) -> None:
    trust(settings, gemini.c2pa_root)
    found = credentials_read(generate(gemini, "banner 'Summer sale' [[c2pa:none]]"), "image/png")
    assert found.state == "none"
    assert found.manifest is None


def test_a_drawing_is_signed_once_and_served_from_the_cache(gemini: Any) -> None:
    # ECDSA signatures and manifest ids differ per signing: equal bytes mean one signing.
    first = generate(gemini, "avatar of a cached fox")
    misses = gemini.stats()["render_cache"]["misses"]
    assert generate(gemini, "avatar of a cached fox [[bench:2]]") == first
    assert gemini.stats()["render_cache"]["misses"] == misses


def test_batch_images_carry_credentials_too(gemini: Any, settings: Any) -> None:
    trust(settings, gemini.c2pa_root)
    client = sdk(gemini)
    job = client.batches.create(
        model=LITE, src=[request("banner 'Batch'", "a")], config=types.CreateBatchJobConfig()
    )
    done = wait_done(client, job.name)
    data = done.dest.inlined_responses[0].response.parts[-1].inline_data.data
    assert credentials_read(bytes(data), "image/png").state == "trusted"


def test_flags_switch_credentials_off_or_name_the_chain() -> None:
    assert parse_args([]).c2pa is True
    assert parse_args(["--no-c2pa"]).c2pa is False
    chosen = parse_args(["--c2pa-cert", "chain.pem", "--c2pa-key", "key.pem"])
    assert (chosen.c2pa_cert, chosen.c2pa_key) == ("chain.pem", "key.pem")


async def _serve(settings: Settings, prompt: str) -> tuple[int, bytes]:
    emulator = Emulator(settings)
    async with TestClient(TestServer(emulator.app())) as client:
        root = await client.get("/_emulator/c2pa/root.pem")
        body = {
            "contents": [{"role": "user", "parts": [{"text": prompt}]}],
            "generationConfig": {"responseModalities": ["IMAGE"]},
        }
        answer = await client.post(f"/v1beta/models/{LITE}:generateContent", json=body)
        parts = (await answer.json())["candidates"][0]["content"]["parts"]
        return root.status, base64.b64decode(parts[-1]["inlineData"]["data"])


def test_no_c2pa_serves_unsigned_images_and_no_root(settings: Any) -> None:
    off = Settings(latency=0, jitter=0, image_bytes="small", c2pa=False)
    status, data = asyncio.run(_serve(off, "avatar of an unsigned owl"))
    assert status == 404
    assert credentials_read(data, "image/png").state == "none"


def test_a_chain_from_files_signs_the_images(tmp_path: Path, settings: Any) -> None:
    # A throwaway chain made for this test, written only to its temporary folder.
    chain = credentials.make_test_chain()
    (tmp_path / "chain.pem").write_bytes(chain.chain_pem + chain.root_pem)
    (tmp_path / "key.pem").write_bytes(chain.key_pem)
    (tmp_path / "root.pem").write_bytes(chain.root_pem)
    files = Settings(
        latency=0,
        jitter=0,
        image_bytes="small",
        c2pa_cert=str(tmp_path / "chain.pem"),
        c2pa_key=str(tmp_path / "key.pem"),
    )
    status, data = asyncio.run(_serve(files, "avatar of a signed heron"))
    assert status == 200
    trust(settings, tmp_path / "root.pem")
    assert credentials_read(data, "image/png").state == "trusted"


def test_signing_costs_a_few_milliseconds_per_drawing() -> None:
    """The emulator's CPU per image drawn, with and without signing (docs/emulators-gemini.md
    has the figures); hits of the render cache cost nothing more."""
    from emulators.gemini.render import RenderSpec, render_uncached

    spec = RenderSpec(
        model=LITE, prompt="avatar of a timed lynx", width=1024, height=1024, seed=0,
        realistic=True,
    )  # fmt: skip
    png = render_uncached(spec).png
    signer = credentials.PngSigner(credentials.make_test_chain())
    signer.sign(png, LITE)  # the first call builds the Context
    started = time.process_time()
    for _ in range(5):
        signed = signer.sign(png, LITE)
    per_image_ms = (time.process_time() - started) * 1000 / 5
    assert len(signed) - len(png) < 8 * 1024  # no embedded thumbnail
    assert per_image_ms < 100

"""Every curl and Python example of README.md and docs/*.md runs, as written, against a
live server (the documented key and addresses swapped for the test's), and passes.

curl examples run with `--fail-with-body`: an example that gets a 4xx or 5xx fails. The
webhooks guide's endpoint example points at a loopback receiver, and its verification
code is then run on what that receiver was sent.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from tests.docs.examples import Example, doc_files, examples
from tests.plugins.actors import Actor
from tests.plugins.gemini import GeminiEmulator
from tests.plugins.receiver import WebhookReceiver

FILES = [path for path in doc_files() if examples(path)]
CURL_FAILS_ON_ERRORS = 'curl() { command curl --silent --show-error --fail-with-body "$@"; }\n'


def _run(example: Example, code: str, cwd: Path, key: str) -> subprocess.CompletedProcess[str]:
    if example.lang == "bash":
        argv = ["bash", "-euo", "pipefail", "-c", CURL_FAILS_ON_ERRORS + code]
    else:
        argv = [sys.executable, "-c", code]
    env = {**os.environ, "BUNCH_KEY": key}
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=90)


def test_the_runner_finds_the_examples_a_reader_would_try() -> None:
    found = {path.name: [e.lang for e in examples(path)] for path in FILES}
    assert found["README.md"] == ["bash"]
    assert found["api.md"].count("bash") == 5 and found["api.md"].count("python") == 1
    assert found["webhooks.md"] == ["bash", "python", "python"]


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_every_example_in_the_file_runs_against_a_live_server(
    path: Path,
    live_server: Any,
    inline_worker: GeminiEmulator,
    owner: Actor,
    webhook_receiver: WebhookReceiver,
    tmp_path: Path,
) -> None:
    outputs: list[str] = []
    for example in examples(path):
        code = example.for_server(
            origin=live_server.url, key=owner.key, receiver=webhook_receiver.url
        )
        result = _run(example, code, tmp_path, owner.key)
        assert result.returncode == 0, f"{example.name}\n{code}\n{result.stdout}\n{result.stderr}"
        outputs.append(result.stdout)
    if path.name == "api.md":  # the examples saved what they generated
        assert '"status":"succeeded"' in outputs[1].replace(" ", "")
        for name in ("a.png", "banner.png"):
            assert (tmp_path / name).read_bytes().startswith(b"\x89PNG"), name
    if path.name == "webhooks.md":
        _verify_with_the_documented_code(path, outputs[0], owner, webhook_receiver)


def _verify_with_the_documented_code(
    path: Path, created: str, owner: Actor, receiver: WebhookReceiver
) -> None:
    """The endpoint the guide made gets a real event; both verification examples accept it."""
    secret = json.loads(created)["secret"]
    job = owner.api().post(
        "/api/v1/generations", {"prompt": "a hook test"}, format="json", HTTP_PREFER="wait=30"
    )
    assert job.status_code == 200, job.content
    sent = receiver.wait_for("job.succeeded")
    library, by_hand = (e.code for e in examples(path) if e.lang == "python")

    scope: dict[str, Any] = {"BUNCH_WEBHOOK_SECRET": secret, "HttpResponse": _Response}
    exec(library, scope)  # the guide's own code, run as a reader would
    request = SimpleNamespace(body=sent.body, headers=sent.headers)
    assert scope["receive"](request) is None  # verified, and handled
    tampered = SimpleNamespace(body=sent.body + b" ", headers=sent.headers)
    assert scope["receive"](tampered).status == 400

    scope = {}
    exec(by_hand, scope)
    assert scope["is_valid"](secret, sent.headers, sent.body) is True
    assert scope["is_valid"](secret, sent.headers, sent.body + b" ") is False


class _Response:
    def __init__(self, status: int) -> None:
        self.status = status

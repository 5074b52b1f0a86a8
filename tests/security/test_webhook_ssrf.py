"""Outgoing webhooks cannot be pointed inside: every internal address in every spelling is
refused when the endpoint is saved and when a delivery is sent, and a resolver that
changes its answer between the check and the connection (DNS rebinding) gets no second
question. DNS and the socket connect are faked: they are the edge of the system."""

from __future__ import annotations

import datetime as dt
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from pytest_django.fixtures import Settings

from tests.plugins.actors import Actor, assert_error
from webhooks import safe_http
from webhooks.models import WebhookDelivery
from webhooks.services import delivery_attempt, endpoint_create, event_emit

ENDPOINTS = "/api/v1/webhook-endpoints"
PUBLIC = "93.184.215.14"

# Each spelled as a tenant would type it. 49 in all.
INTERNAL_URLS = [
    "http://127.0.0.1/", "http://127.1.2.3:8000/", "http://0.0.0.0/", "http://10.0.0.1/",
    "http://172.16.0.1/", "http://172.31.255.255/", "http://192.168.1.1/",
    "http://169.254.169.254/latest/meta-data/", "http://100.64.0.1/", "http://100.127.255.254/",
    "http://224.0.0.1/", "http://239.255.255.250/", "http://240.0.0.1/",
    "http://255.255.255.255/", "http://192.0.0.1/", "http://198.18.0.1/", "http://192.0.2.1/",
    "http://[::1]/", "http://[::]/", "http://[fc00::1]/", "http://[fd12:3456::1]/",
    "http://[fe80::1]/", "https://[fe80::1%25eth0]/", "http://[ff02::1]/",
    "http://[::ffff:127.0.0.1]/", "http://[::ffff:7f00:1]/", "http://[::ffff:169.254.169.254]/",
    "http://[::ffff:10.0.0.1]/", "http://[::127.0.0.1]/", "http://[64:ff9b::7f00:1]/",
    "http://[64:ff9b::a9fe:a9fe]/", "http://[64:ff9b:1::1]/", "http://[2002:7f00:1::]/",
    "http://[2002:a9fe:a9fe::]/", "http://[2002:c0a8:101::]/",
    "http://[2001:0:4136:e378:8000:63bf:80ff:fffe]/",  # Teredo, client 127.0.0.1
    "http://2130706433/", "http://0x7f000001/", "http://0177.0.0.1/", "http://127.1/",
    "http://0x7f.0.0.1/", "http://017700000001/", "http://localhost/", "http://LOCALHOST./",
    "http://api.localhost/", "http://metadata.google.internal/computeMetadata/v1/",
    "http://metadata/", "http://instance-data/", "http://printer.local/",
]  # fmt: skip

# Addresses a DNS answer can carry. 33 in all.
INTERNAL_ADDRESSES = [
    "127.0.0.1", "127.255.255.254", "0.0.0.0", "10.1.2.3", "172.16.5.4", "192.168.0.10",
    "169.254.169.254", "169.254.170.2", "100.64.0.1", "100.100.100.200", "224.0.0.251",
    "240.0.0.1", "255.255.255.255", "198.18.0.1", "192.0.0.170", "::1", "::", "fc00::1",
    "fd00:ec2::254", "fe80::1", "fe80::1%eth0", "ff02::1", "::ffff:127.0.0.1",
    "::ffff:169.254.169.254", "::ffff:192.168.0.1", "::127.0.0.1", "64:ff9b::7f00:1",
    "64:ff9b::a9fe:a9fe", "64:ff9b:1::a", "2002:7f00:1::", "2002:a9fe:a9fe::", "2002:a00:1::",
    "2001:0:4136:e378:8000:63bf:80ff:fffe",
]  # fmt: skip


@dataclass
class FakeNet:
    """DNS answers given in turn (the last repeats), and every connection asked for."""

    answers: list[list[str]] = field(default_factory=lambda: [[PUBLIC]])
    questions: int = 0
    connections: list[tuple[str, int]] = field(default_factory=list)
    receiver: tuple[str, int] | None = None

    def resolve(self, host: str, port: int) -> list[str]:
        self.questions += 1
        return self.answers[min(self.questions, len(self.answers)) - 1]

    def connect(self, address: str, port: int, timeout: float) -> socket.socket:
        self.connections.append((address, port))
        if self.receiver is None:
            raise ConnectionRefusedError("nothing listens in this test")
        return socket.create_connection(self.receiver, timeout=timeout)


@pytest.fixture
def net(monkeypatch: pytest.MonkeyPatch, settings: Settings) -> FakeNet:
    settings.WEBHOOKS_ALLOW_LOOPBACK = False
    fake = FakeNet()
    monkeypatch.setattr(safe_http, "system_resolver", fake.resolve)
    monkeypatch.setattr(safe_http, "system_connector", fake.connect)
    return fake


@dataclass
class Receiver:
    address: tuple[str, int]
    requests: list[dict[str, Any]] = field(default_factory=list)
    status: int = 204
    headers: dict[str, str] = field(default_factory=dict)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver(("127.0.0.1", 0))

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", 0))
            state.requests.append(
                {"path": self.path, "host": self.headers["Host"], "body": self.rfile.read(length)}
            )
            self.send_response(state.status)
            for name, value in state.headers.items():
                self.send_header(name, value)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.address = ("127.0.0.1", server.server_address[1])
    threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True).start()
    yield state
    server.shutdown()
    server.server_close()


def _send(actor: Actor) -> WebhookDelivery:
    (delivery,) = event_emit(tenant=actor.tenant, event_type="job.succeeded", data={"id": "j"})
    sent = delivery_attempt(delivery_id=str(delivery.id), now=delivery.created_at)
    assert sent is not None
    return sent


# The matrix ----------------------------------------------------------------------------


def test_every_internal_url_is_refused_when_an_endpoint_is_saved(
    owner: Actor, net: FakeNet
) -> None:
    net.answers = [[PUBLIC]]  # any name that is resolved at all would look public
    accepted = []
    for url in INTERNAL_URLS:
        response = owner.api().post(ENDPOINTS, {"url": url}, format="json")
        if response.status_code != 400:
            accepted.append(url)
        else:  # some spellings fail URL validation before the destination rules
            assert response.json()["error"]["code"] in (
                "webhook_url_not_allowed",
                "validation_error",
            )
    blocked = len(INTERNAL_URLS) - len(accepted)
    assert (blocked, len(INTERNAL_URLS)) == (49, 49), accepted
    assert net.connections == []


def test_every_internal_url_saved_before_the_rules_is_refused_at_send_time(
    owner: Actor, net: FakeNet, receiver: Receiver
) -> None:
    net.receiver = receiver.address
    for url in INTERNAL_URLS:  # as if saved by an older release or straight into the table
        endpoint, _ = endpoint_create(tenant=owner.tenant, url="https://hooks.example.com/x",
                                      event_types=[])  # fmt: skip
        type(endpoint).objects.filter(pk=endpoint.pk).update(url=url)
    deliveries = event_emit(tenant=owner.tenant, event_type="job.succeeded", data={"id": "j"})

    for delivery in deliveries:
        sent = delivery_attempt(delivery_id=str(delivery.id), now=delivery.created_at)
        assert sent is not None and "not allowed" in sent.last_error, sent.last_error

    assert len(deliveries) == 49
    assert net.connections == [] and receiver.requests == []


@pytest.mark.parametrize("order", ["inside, then public", "public, then inside"])
def test_a_resolver_that_changes_its_answer_never_gets_a_connection_inside(
    owner: Actor, net: FakeNet, receiver: Receiver, order: str
) -> None:
    net.receiver = receiver.address
    tried = reached_inside = 0
    for address in INTERNAL_ADDRESSES:
        net.answers = [[PUBLIC]]
        endpoint, _ = endpoint_create(
            tenant=owner.tenant, url="https://rebind.example.com/hook", event_types=[]
        )  # the check when saving saw a public address
        net.questions, net.connections = 0, []
        net.answers = [[address], [PUBLIC]] if order.startswith("inside") else [[PUBLIC], [address]]

        sent = _send(owner)

        tried += 1
        reached_inside += any(a == address.split("%")[0] for a, _ in net.connections)
        assert net.questions == 1  # resolved once per send: there is no second answer
        if order.startswith("inside"):
            assert "not allowed" in sent.last_error and net.connections == []
        else:
            assert net.connections == [(PUBLIC, 443)]
        endpoint.delete()
    assert (tried, reached_inside) == (33, 0)


def test_a_name_with_one_inside_address_among_public_ones_is_refused(
    owner: Actor, net: FakeNet
) -> None:
    net.answers = [[PUBLIC, "10.0.0.7"]]
    response = owner.api().post(ENDPOINTS, {"url": "https://mixed.example.com/h"}, format="json")
    assert "10.0.0.7" in assert_error(response, 400, "webhook_url_not_allowed")["message"]


@pytest.mark.parametrize(
    "url", ["ftp://example.com/x", "file:///etc/passwd", "gopher://example.com/", "http:///x",
            "http://exa mple.com/", "http://example.com/a\r\nX-Injected: 1", "http://intranet/"],
)  # fmt: skip
def test_urls_that_are_not_plain_http_to_a_public_name_are_refused(
    owner: Actor, net: FakeNet, url: str
) -> None:
    response = owner.api().post(ENDPOINTS, {"url": url}, format="json")
    assert response.status_code == 400, response.content


def test_public_addresses_in_transition_forms_are_allowed() -> None:
    for address in ["8.8.8.8", "2606:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808",
                    "2002:808:808::"]:  # fmt: skip
        assert safe_http.address_problem(address) is None, address


# How the connection is made ------------------------------------------------------------


def test_the_connection_goes_to_the_checked_address_with_the_host_name_kept(
    owner: Actor, net: FakeNet, receiver: Receiver
) -> None:
    net.receiver = receiver.address
    endpoint_create(tenant=owner.tenant, url="http://hooks.example.com:8080/in?x=1",
                    event_types=[])  # fmt: skip
    net.questions, net.answers = 0, [[PUBLIC], ["127.0.0.1"]]

    sent = _send(owner)

    assert sent.status == "succeeded", sent.last_error
    assert net.connections == [(PUBLIC, 8080)]
    (request,) = receiver.requests
    assert request["host"] == "hooks.example.com:8080"
    assert request["path"] == "/in?x=1"
    assert b'"type":"job.succeeded"' in request["body"]


def test_redirects_are_not_followed(owner: Actor, net: FakeNet, receiver: Receiver) -> None:
    net.receiver = receiver.address
    receiver.status, receiver.headers = 302, {"Location": "http://127.0.0.1/admin/"}
    endpoint_create(tenant=owner.tenant, url="http://hooks.example.com/in", event_types=[])

    sent = _send(owner)

    assert sent.response_code == 302, sent.last_error
    assert sent.status == "pending"  # retried later, not followed
    assert len(receiver.requests) == 1 and net.connections == [(PUBLIC, 80)]


def test_proxy_environment_variables_are_ignored(
    owner: Actor, net: FakeNet, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY"):
        monkeypatch.setenv(name, "http://10.9.9.9:3128")
    net.receiver = receiver.address
    endpoint_create(tenant=owner.tenant, url="http://hooks.example.com/in", event_types=[])

    sent = _send(owner)

    assert sent.status == "succeeded" and net.connections == [(PUBLIC, 80)]


# Time and size ---------------------------------------------------------------------------


class _SilentPeer:
    """The far end of a socket pair: sends what it is told, then holds the line open."""

    def __init__(self, payload: bytes) -> None:
        self.ours, self.theirs = socket.socketpair()
        self.sent = 0
        self.theirs.settimeout(5)
        threading.Thread(target=self._send, args=(payload,), daemon=True).start()

    def _send(self, payload: bytes) -> None:
        try:
            for start in range(0, len(payload), 4096):
                self.sent += self.theirs.send(payload[start : start + 4096])
        except OSError:
            pass

    def connect(self, address: str, port: int, timeout: float) -> socket.socket:
        return self.ours


def _destination() -> safe_http.Destination:
    return safe_http.destination("http://hooks.example.com/x", resolver=lambda h, p: [PUBLIC])


def test_a_receiver_that_never_finishes_its_answer_is_given_up_at_the_deadline() -> None:
    peer = _SilentPeer(b"HTTP/1.1 20")  # starts an answer, then nothing
    started = time.monotonic()

    answer = safe_http.post(_destination(), b"{}", {}, connect=peer.connect, deadline_s=0.3)

    assert answer.status_code is None and "deadline" in answer.error
    assert time.monotonic() - started < 2


def test_the_deadline_is_counted_on_the_clock_across_reads() -> None:
    peer = _SilentPeer(b"HTTP/1.1 500 Slow\r\n" + b"X: y\r\n" * 1000)  # never ends the head
    ticks = iter(range(1000))

    answer = safe_http.post(
        _destination(), b"{}", {}, connect=peer.connect, deadline_s=3,
        clock=lambda: float(next(ticks)),
    )  # fmt: skip

    assert answer.status_code == 500  # what arrived before the clock ran out


class _Counting:
    """The socket the sender gets, counting what it reads."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock, self.read = sock, 0

    def recv(self, size: int) -> bytes:
        data = self.sock.recv(size)
        self.read += len(data)
        return data

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sock, name)


def test_at_most_64_kib_of_an_answer_is_read() -> None:
    peer = _SilentPeer(b"HTTP/1.1 500 Oops\r\nX-Pad: " + b"a" * (4 * 1024 * 1024))
    counting = _Counting(peer.ours)

    answer = safe_http.post(
        _destination(),
        b"{}",
        {},
        connect=lambda a, p, t: counting,
        deadline_s=5,  # type: ignore[arg-type, return-value]
    )

    assert answer.status_code == 500
    assert counting.read == safe_http.MAX_READ_BYTES


def test_an_error_answer_is_excerpted_not_read_whole() -> None:
    peer = _SilentPeer(b"HTTP/1.1 500 Oops\r\nContent-Length: 9999999\r\n\r\n" + b"e" * 200_000)

    answer = safe_http.post(_destination(), b"{}", {}, connect=peer.connect, deadline_s=5)

    assert answer.status_code == 500
    assert len(answer.excerpt) <= safe_http.EXCERPT_BYTES


# TLS -----------------------------------------------------------------------------------


def _certificate(tmp_path: Path, name: str) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / f"{name}.pem", tmp_path / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@pytest.fixture
def tls_receiver(tmp_path: Path) -> Iterator[dict[str, Any]]:
    cert, key = _certificate(tmp_path, "hooks.example.com")
    seen: dict[str, Any] = {"cert": cert}
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)
    server_context.sni_callback = lambda sock, name, ctx: seen.__setitem__("sni", name)
    listener = socket.create_server(("127.0.0.1", 0))
    seen["address"] = listener.getsockname()

    def serve() -> None:
        try:
            raw, _ = listener.accept()
            with server_context.wrap_socket(raw, server_side=True) as conn:
                seen["request"] = conn.recv(65536)
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        except (OSError, ssl.SSLError) as exc:
            seen["error"] = exc

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield seen
    listener.close()
    thread.join(timeout=5)


def test_tls_goes_to_the_checked_address_with_the_url_name_as_sni_and_certificate(
    tls_receiver: dict[str, Any],
) -> None:
    to = safe_http.destination("https://hooks.example.com/in", resolver=lambda h, p: [PUBLIC])
    trust = ssl.create_default_context(cafile=str(tls_receiver["cert"]))

    answer = safe_http.post(
        to, b"{}", {}, tls=trust,
        connect=lambda a, p, t: socket.create_connection(tls_receiver["address"], timeout=t),
    )  # fmt: skip

    assert answer.status_code == 200, answer.error
    assert to.address == PUBLIC
    assert tls_receiver["sni"] == "hooks.example.com"
    assert b"\r\nHost: hooks.example.com\r\n" in tls_receiver["request"]


def test_a_certificate_for_another_name_fails_the_delivery(
    tls_receiver: dict[str, Any],
) -> None:
    to = safe_http.destination("https://other.example.com/in", resolver=lambda h, p: [PUBLIC])
    trust = ssl.create_default_context(cafile=str(tls_receiver["cert"]))

    answer = safe_http.post(
        to, b"{}", {}, tls=trust,
        connect=lambda a, p, t: socket.create_connection(tls_receiver["address"], timeout=t),
    )  # fmt: skip

    assert answer.status_code is None and "certificate" in answer.error.lower()


# The development setting -----------------------------------------------------------------


def test_the_development_setting_allows_loopback_and_nothing_else(
    settings: Settings,
) -> None:
    settings.WEBHOOKS_ALLOW_LOOPBACK = True
    allowed = [u for u in INTERNAL_URLS if safe_http.url_problem(u, allow_loopback=True,
                                                               resolve=False) is None]  # fmt: skip
    assert allowed == [
        "http://127.0.0.1/", "http://127.1.2.3:8000/", "http://[::1]/", "http://localhost/",
        "http://LOCALHOST./",
    ]  # fmt: skip


def test_the_development_setting_cannot_be_on_with_debug_off() -> None:
    import subprocess
    import sys

    env = {
        "DJANGO_DEBUG": "false",
        "DJANGO_ALLOWED_HOSTS": "bunch.example",
        "DJANGO_SECRET_KEY": "k" * 20 + "abcdefghij" * 4,
        "BUNCH_WEBHOOKS_ALLOW_LOOPBACK": "true",
        "PATH": "/usr/bin:/bin",
    }
    run = subprocess.run(
        [sys.executable, "manage.py", "check"], env=env, capture_output=True, text=True,
        cwd=Path(__file__).resolve().parents[2], timeout=60,
    )  # fmt: skip
    assert run.returncode != 0
    assert "BUNCH_WEBHOOKS_ALLOW_LOOPBACK is for local development" in run.stderr

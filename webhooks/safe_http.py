"""POSTs to URLs that tenants chose, which must not reach inside our network (SSRF).

The host is resolved **once**; every address it resolves to must be public; the
connection then goes to that checked address, with the URL's host name kept for the
`Host` header and TLS (SNI and certificate check). A resolver that answers a public
address for the check and `127.0.0.1` for the connection (DNS rebinding) has no second
question to answer.

The request is written on a plain socket rather than through an HTTP library so that
nothing else happens behind our back: no redirect is followed, no proxy is read from the
environment, the connection has a short timeout and the whole exchange a deadline
(checked before every read, so a receiver that answers one byte at a time cannot hold
a worker), and at most 64 KiB of the answer are read.

Refused: loopback, private (RFC 1918, ULA), link-local, CGNAT (100.64/10), multicast,
reserved, unspecified and documentation ranges; the same addresses inside IPv6
transition forms (IPv4-mapped and -compatible, NAT64 `64:ff9b::/96`, 6to4 `2002::/16`,
Teredo); numeric host spellings other than a dotted quad (`2130706433`, `0x7f.1`,
`0177.0.0.1`, `127.1`); `localhost` and cloud metadata names. `allow_loopback` (an
operator's development setting) lets loopback through, nothing else.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], list[str]]
Connector = Callable[[str, int, float], socket.socket]

CONNECT_TIMEOUT_S = 3.0
DEADLINE_S = 10.0
MAX_READ_BYTES = 64 * 1024
EXCERPT_BYTES = 500

_BLOCKED_NAMES = {
    "localhost",
    "localhost.localdomain",
    "ip6-localhost",
    "ip6-loopback",
    "metadata",
    "metadata.google.internal",
    "metadata.goog",
    "instance-data",
    "instance-data.ec2.internal",
    "kubernetes.default",
}
_BLOCKED_SUFFIXES = (".localhost", ".internal", ".local", ".localdomain", ".home.arpa", ".svc")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")
_SIX_TO_FOUR = ipaddress.ip_network("2002::/16")
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")
_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_NUMERIC_HOST = re.compile(r"^(0x[0-9a-f]*|\d+)(\.(0x[0-9a-f]*|\d+))*\.?$")
_UNSAFE_URL_CHARS = re.compile(r"[\x00-\x20\x7f]")


class DestinationRefused(Exception):
    """The URL may not be sent to; the message says why, in words for the tenant."""


@dataclass(frozen=True)
class Destination:
    scheme: str
    host: str  # as in the URL, for the Host header and TLS
    port: int
    target: str  # path and query
    address: str  # the checked address the connection goes to


@dataclass(frozen=True)
class Answer:
    status_code: int | None
    excerpt: str = ""
    error: str = ""


def system_resolver(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def system_connector(address: str, port: int, timeout: float) -> socket.socket:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect((address, port))
    except BaseException:
        sock.close()
        raise
    return sock


# Addresses ----------------------------------------------------------------------------


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 transition form carries, if it is one."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip in _NAT64 or (ip in _IPV4_COMPATIBLE and int(ip) > 1):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    return None


def address_problem(address: str, *, allow_loopback: bool = False) -> str | None:
    """Why a connection to `address` is refused, or None when it is a public address."""
    try:
        ip: IPAddress = ipaddress.ip_address(address.split("%", 1)[0])  # drop a zone id
    except ValueError:
        return f"{address!r} is not an IP address."
    if allow_loopback and ip.is_loopback:
        return None
    if isinstance(ip, ipaddress.IPv6Address):
        if ip in _NAT64_LOCAL:
            return f"{ip} is a local-use NAT64 address."
        inner = _embedded_ipv4(ip)
        if inner is not None:
            problem = address_problem(str(inner))
            return f"{ip} carries {inner}: {problem}" if problem else None
    if ip in _CGNAT:
        return f"{ip} is a carrier-grade NAT (shared) address."
    for label, flag in (
        ("loopback", ip.is_loopback),
        ("link-local", ip.is_link_local),
        ("multicast", ip.is_multicast),
        ("unspecified", ip.is_unspecified),
        ("reserved", ip.is_reserved),
        ("private", ip.is_private),
    ):
        if flag:
            return f"{ip} is a {label} address."
    if not ip.is_global:
        return f"{ip} is not a public internet address."
    return None


def _host_problem(host: str, *, allow_loopback: bool) -> str | None:
    name = host.rstrip(".").lower()
    if not name:
        return "The URL has no host."
    if _NUMERIC_HOST.match(name) and not _is_dotted_quad(name):
        return f"{host!r} is a numeric host other than a.b.c.d; write the address plainly."
    if allow_loopback and name in ("localhost", "ip6-localhost", "ip6-loopback"):
        return None
    if name in _BLOCKED_NAMES or name.endswith(_BLOCKED_SUFFIXES):
        return f"{host!r} names a local or metadata service."
    if "." not in name and not _literal(name):
        return f"{host!r} is not a fully qualified domain name."
    return None


def _is_dotted_quad(name: str) -> bool:
    """Four decimal parts without leading zeros: the one spelling of an IPv4 address
    accepted (`inet_aton` also reads `2130706433`, `0x7f.1` and `0177.0.0.1`)."""
    parts = name.split(".")
    return len(parts) == 4 and all(
        p.isdigit() and int(p) <= 255 and (p == "0" or not p.startswith("0")) for p in parts
    )


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return None


# URLs ---------------------------------------------------------------------------------


def _split(url: str) -> tuple[str, str, int, str]:
    if _UNSAFE_URL_CHARS.search(url):
        raise DestinationRefused("The URL contains spaces or control characters.")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise DestinationRefused(f"The URL is malformed: {exc}.") from None
    if parts.scheme not in ("http", "https"):
        raise DestinationRefused("Webhook URLs must be http:// or https://.")
    host = parts.hostname or ""
    try:
        host.encode("idna")
    except UnicodeError:
        raise DestinationRefused(f"{host!r} is not a valid host name.") from None
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return parts.scheme, host, port or (443 if parts.scheme == "https" else 80), target


def url_problem(
    url: str,
    *,
    allow_loopback: bool = False,
    resolve: bool = True,
    resolver: Resolver | None = None,
) -> str | None:
    """Why `url` may not be a webhook destination, or None. With `resolve=False` a host
    name is judged on its spelling only (it is resolved and checked at every send)."""
    try:
        if resolve:
            destination(url, allow_loopback=allow_loopback, resolver=resolver)
        else:
            _, host, _, _ = _split(url)
            literal = _literal(host)
            problem = (
                address_problem(str(literal), allow_loopback=allow_loopback)
                if literal is not None
                else _host_problem(host, allow_loopback=allow_loopback)
            )
            if problem:
                raise DestinationRefused(problem)
    except DestinationRefused as exc:
        return str(exc)
    return None


def destination(
    url: str, *, allow_loopback: bool = False, resolver: Resolver | None = None
) -> Destination:
    """Where a POST to `url` connects: resolved once, every address checked."""
    resolver = resolver or system_resolver  # looked up now: tests replace it
    scheme, host, port, target = _split(url)
    literal = _literal(host)
    if literal is not None:
        addresses = [str(literal)]
    else:
        problem = _host_problem(host, allow_loopback=allow_loopback)
        if problem:
            raise DestinationRefused(problem)
        try:
            addresses = resolver(host.encode("idna").decode("ascii"), port)
        except (OSError, UnicodeError):
            raise DestinationRefused(f"{host!r} does not resolve.") from None
    if not addresses:
        raise DestinationRefused(f"{host!r} does not resolve.")
    for address in addresses:
        problem = address_problem(address, allow_loopback=allow_loopback)
        if problem:
            raise DestinationRefused(problem)
    return Destination(scheme, host, port, target, addresses[0].split("%", 1)[0])


# Sending ------------------------------------------------------------------------------


def _request_bytes(to: Destination, body: bytes, headers: dict[str, str]) -> bytes:
    default_port = 443 if to.scheme == "https" else 80
    host = f"[{to.host}]" if ":" in to.host else to.host
    host_header = host if to.port == default_port else f"{host}:{to.port}"
    lines = [f"POST {to.target} HTTP/1.1", f"Host: {host_header}"]
    for name, value in headers.items():
        if _UNSAFE_URL_CHARS.sub("", name) != name or "\r" in value or "\n" in value:
            raise ValueError(f"Header {name!r} has characters a header cannot carry.")
        lines.append(f"{name}: {value}")
    lines += [f"Content-Length: {len(body)}", "Connection: close", "", ""]
    return "\r\n".join(lines).encode("latin-1") + body


def _status(head: bytes) -> int | None:
    match = re.match(rb"HTTP/1\.[01] (\d{3})", head)
    return int(match.group(1)) if match else None


def post(
    to: Destination,
    body: bytes,
    headers: dict[str, str],
    *,
    connect: Connector | None = None,
    tls: ssl.SSLContext | None = None,
    connect_timeout_s: float = CONNECT_TIMEOUT_S,
    deadline_s: float = DEADLINE_S,
    clock: Callable[[], float] = time.monotonic,
) -> Answer:
    """POST `body` to a checked destination; the status code and, for a non-2xx answer,
    an excerpt of its body. Network failures come back as `error`, never raised."""
    deadline = clock() + deadline_s
    connect = connect or system_connector
    try:
        sock = connect(to.address, to.port, min(connect_timeout_s, deadline_s))
    except OSError as exc:
        return Answer(
            None, error=f"ConnectionError: could not connect ({type(exc).__name__}: {exc})"
        )
    try:
        if to.scheme == "https":
            context = tls or ssl.create_default_context()
            sock = context.wrap_socket(sock, server_hostname=to.host)  # SNI + cert check
        sock.settimeout(max(0.001, deadline - clock()))
        sock.sendall(_request_bytes(to, body, headers))
        return _read_answer(sock, deadline, clock)
    except (OSError, ValueError) as exc:
        return Answer(None, error=f"{type(exc).__name__}: {exc}")
    finally:
        sock.close()


def _read_answer(sock: socket.socket, deadline: float, clock: Callable[[], float]) -> Answer:
    received, late = b"", False
    while len(received) < MAX_READ_BYTES:
        remaining = deadline - clock()
        if remaining <= 0:
            late = True
            break
        sock.settimeout(remaining)
        try:
            chunk = sock.recv(min(16 * 1024, MAX_READ_BYTES - len(received)))
        except TimeoutError:  # the timeout was the time left: the deadline has passed
            late = True
            break
        if not chunk:
            break
        received += chunk
        head, separator, rest = received.partition(b"\r\n\r\n")
        if separator and (_is_success(head) or len(rest) >= EXCERPT_BYTES):
            break
    head, _, rest = received.partition(b"\r\n\r\n")
    code = _status(head)
    if code is None:
        what = "no answer before the deadline" if late else "no HTTP answer"
        return Answer(None, error=f"The receiver sent {what}.")
    excerpt = "" if 200 <= code < 300 else rest[:EXCERPT_BYTES].decode("utf-8", "replace")
    return Answer(code, excerpt=excerpt.strip())


def _is_success(head: bytes) -> bool:
    code = _status(head)
    return code is not None and 200 <= code < 300

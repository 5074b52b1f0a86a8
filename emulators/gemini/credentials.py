"""C2PA Content Credentials for the emulator's images, shaped like Google's.

Google signs every generated image with a C2PA manifest (generator "Google C2PA Core
Generator Library", a `c2pa.created` and a `c2pa.edited` action, both with the
`trainedAlgorithmicMedia` digital source type). The emulator does the same with a real
signature, so a client's reading and verifying runs through the real SDK offline:

- its own test CA and signing leaf, made at start-up (or loaded from `--c2pa-cert` /
  `--c2pa-key`), the root published at `GET /_emulator/c2pa/root.pem`;
- no timestamp authority: there is no network, and an unreachable one makes signing fail.

`tampered()` and `stripped()` make the `[[c2pa:tampered]]` and `[[c2pa:none]]` answers
from a signed PNG: one pixel byte changed (the data hash no longer matches), or the
manifest chunk removed.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import struct
import tempfile
import threading
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import c2pa
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

TRAINED = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
GENERATOR = "Google C2PA Core Generator Library"
ISSUER = "Google LLC (Bunch emulator test)"
SIGNER_NAME = "Google Media Processing Services (emulated)"
ROOT_NAME = "Bunch Gemini Emulator Test Root CA"
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_MANIFEST_CHUNK = b"caBX"


@dataclass(frozen=True)
class TestChain:
    """A CA and a leaf that C2PA accepts for signing, as PEM."""

    root_pem: bytes
    chain_pem: bytes  # leaf first, without the root
    key_pem: bytes


def _name(common: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, ISSUER),
        ]
    )


def make_test_chain(*, now: dt.datetime | None = None) -> TestChain:
    """A fresh root CA and an ES256 signing leaf (digitalSignature, emailProtection EKU).

    The keys live only in memory for the emulator's lifetime; nothing secret is ever written
    to the repository.
    """
    now = now or dt.datetime.now(dt.UTC)
    root_key = ec.generate_private_key(ec.SECP256R1())
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    root_name = _name(ROOT_NAME)
    root = (
        x509.CertificateBuilder()
        .subject_name(root_name)
        .issuer_name(root_name)
        .public_key(root_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(root_key.public_key()), False)
        .sign(root_key, hashes.SHA256())
    )
    leaf = (
        x509.CertificateBuilder()
        .subject_name(_name(SIGNER_NAME))
        .issuer_name(root_name)
        .public_key(leaf_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=825))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(leaf_key.public_key()), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()), False
        )
        .sign(root_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    return TestChain(
        root_pem=root.public_bytes(pem),
        chain_pem=leaf.public_bytes(pem),
        key_pem=leaf_key.private_bytes(
            pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ),
    )


def load_chain(cert_path: str, key_path: str) -> TestChain:
    """A chain from files: the certificate file lists the leaf first and the root last."""
    with open(cert_path, "rb") as fh:
        certs = x509.load_pem_x509_certificates(fh.read())
    with open(key_path, "rb") as fh:
        key_pem = fh.read()
    pem = serialization.Encoding.PEM
    root = certs[-1] if len(certs) > 1 else certs[0]
    chain = certs[:-1] if len(certs) > 1 else certs
    return TestChain(
        root_pem=root.public_bytes(pem),
        chain_pem=b"".join(c.public_bytes(pem) for c in chain),
        key_pem=key_pem,
    )


def write_root(chain: TestChain, path: str) -> None:
    """Write the root certificate (public) atomically, so a reader never sees half."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, suffix=".pem")
    with os.fdopen(fd, "wb") as fh:
        fh.write(chain.root_pem)
    os.replace(tmp, path)


def manifest(*, model_id: str) -> dict[str, Any]:
    """A manifest definition with Google's shape (two actions, trainedAlgorithmicMedia)."""
    return {
        "claim_generator_info": [{"name": GENERATOR, "version": "emulated"}],
        "title": "image.png",
        "assertions": [
            {
                "label": "c2pa.actions.v2",
                "data": {
                    "actions": [
                        {
                            "action": "c2pa.created",
                            "digitalSourceType": TRAINED,
                            "description": "Created by Google Generative AI.",
                            "softwareAgent": {"name": model_id},
                        },
                        {
                            "action": "c2pa.edited",
                            "digitalSourceType": TRAINED,
                            "description": "Applied imperceptible SynthID watermark.",
                        },
                    ]
                },
            }
        ],
    }


class PngSigner:
    """Signs PNGs with one chain. Safe to share between threads: each call gets its own
    Builder (single-use) and Signer; the Context is made lazily, once per process."""

    def __init__(self, chain: TestChain) -> None:
        self.chain = chain
        self._context: c2pa.Context | None = None
        self._lock = threading.Lock()

    def _ctx(self) -> c2pa.Context:
        with self._lock:
            if self._context is None:
                # The default thumbnail costs about 115 ms and 377 KB per image.
                self._context = c2pa.Context.from_dict(
                    {
                        "builder": {"thumbnail": {"enabled": False}},
                        "verify": {"remote_manifest_fetch": False, "ocsp_fetch": False},
                    }
                )
            return self._context

    def sign(self, png: bytes, model_id: str) -> bytes:
        info = c2pa.C2paSignerInfo(
            c2pa.C2paSigningAlg.ES256, self.chain.chain_pem, self.chain.key_pem, None
        )
        signer = c2pa.Signer.from_info(info)
        try:
            with c2pa.Builder(json.dumps(manifest(model_id=model_id)), self._ctx()) as builder:
                out = io.BytesIO()
                builder.sign(signer, "image/png", io.BytesIO(png), out)
                return out.getvalue()
        finally:
            signer.close()


def _chunks(png: bytes) -> list[tuple[bytes, bytes]]:
    if not png.startswith(_PNG_SIGNATURE):
        raise ValueError("not a PNG")
    pos, found = len(_PNG_SIGNATURE), []
    while pos < len(png):
        (length,) = struct.unpack(">I", png[pos : pos + 4])
        kind = png[pos + 4 : pos + 8]
        found.append((kind, png[pos + 8 : pos + 8 + length]))
        pos += 12 + length
    return found


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def stripped(png: bytes) -> bytes:
    """The PNG without its manifest chunk: what a re-encode leaves, "no credentials"."""
    return _PNG_SIGNATURE + b"".join(
        _chunk(kind, data) for kind, data in _chunks(png) if kind != _MANIFEST_CHUNK
    )


def tampered(png: bytes) -> bytes:
    """The PNG with one pixel changed and re-compressed, manifest kept: still a valid
    image, but its hash no longer matches the signed one (`assertion.dataHash.mismatch`)."""
    chunks = _chunks(png)
    idat = b"".join(data for kind, data in chunks if kind == b"IDAT")
    raw = bytearray(zlib.decompress(idat))
    raw[1] ^= 0x01  # byte 0 of each row is its filter type; byte 1 is the first pixel's red
    out, written = [_PNG_SIGNATURE], False
    for kind, data in chunks:
        if kind == b"IDAT":
            if not written:
                out.append(_chunk(b"IDAT", zlib.compress(bytes(raw), 1)))
                written = True
            continue
        out.append(_chunk(kind, data))
    return b"".join(out)


def trigger(prompt: str) -> Callable[[bytes], bytes] | None:
    """The change a prompt's `[[c2pa:tampered]]` or `[[c2pa:none]]` marker asks for."""
    if "[[c2pa:tampered]]" in prompt:
        return tampered
    if "[[c2pa:none]]" in prompt:
        return stripped
    return None

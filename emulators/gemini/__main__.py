"""python -m emulators.gemini --host 127.0.0.1 --port 8401 [--latency 4.0] [...]"""

from __future__ import annotations

import argparse
import os

from .faults import FaultRates
from .server import Settings, run


def _env(name: str, default: str | None) -> str | None:
    return os.environ.get(f"GEMINI_EMULATOR_{name}", default)


def parse_args(argv: list[str] | None = None) -> Settings:
    p = argparse.ArgumentParser(prog="python -m emulators.gemini", description=__doc__)
    p.add_argument("--host", default=_env("HOST", "127.0.0.1"))
    p.add_argument("--port", type=int, default=int(_env("PORT", "8401") or 8401))
    p.add_argument(
        "--latency",
        type=float,
        default=float(_env("LATENCY", "4.0") or 4.0),
        help="simulated model time per image, seconds",
    )
    p.add_argument(
        "--jitter",
        type=float,
        default=float(_env("JITTER", "0.5") or 0.5),
        help="uniform +/- jitter on the latency, seconds",
    )
    p.add_argument(
        "--api-key",
        default=_env("API_KEY", None),
        help="if set, requests with another key get 403 PERMISSION_DENIED",
    )
    p.add_argument("--seed", type=int, default=int(_env("SEED", "0") or 0))
    p.add_argument(
        "--batch-step-seconds", type=float, default=float(_env("BATCH_STEP_SECONDS", "5") or 5)
    )
    p.add_argument(
        "--image-bytes", choices=["realistic", "small"], default=_env("IMAGE_BYTES", "realistic")
    )
    p.add_argument(
        "--max-concurrency",
        type=int,
        default=int(_env("MAX_CONCURRENCY", "0") or 0),
        help="calls in flight beyond N get 429 RESOURCE_EXHAUSTED with RetryInfo (0: no limit)",
    )
    p.add_argument(
        "--request-log",
        default=_env("REQUEST_LOG", None),
        help="append one JSON line per generateContent call (prompt hash, times, model time)",
    )
    p.add_argument(
        "--record-calls",
        action="store_true",
        default=(_env("RECORD_CALLS", "0") or "0") not in ("0", "false", "no"),
        help="keep the last calls' contents for GET /_emulator/requests (costs ~8 ms of CPU "
        "per call with a 1.5 MB image; off by default)",
    )
    p.add_argument(
        "--no-c2pa",
        dest="c2pa",
        action="store_false",
        default=(_env("C2PA", "1") or "1") not in ("0", "false", "no"),
        help="images carry no C2PA Content Credentials",
    )
    p.add_argument(
        "--c2pa-cert",
        default=_env("C2PA_CERT", None),
        help="PEM certificates that sign the images, leaf first and root last "
        "(default: a test CA and leaf made at start-up)",
    )
    p.add_argument(
        "--c2pa-key", default=_env("C2PA_KEY", None), help="PEM private key of that leaf"
    )
    p.add_argument(
        "--c2pa-root-out",
        default=_env("C2PA_ROOT_OUT", None),
        help="write the signing root CA (PEM) to this file at start-up, for a verifier to trust",
    )
    for name, default in FaultRates().as_dict().items():
        flag = name.replace("_", "-")
        p.add_argument(
            f"--{flag}",
            type=float,
            dest=name,
            default=float(_env(name.upper(), str(default)) or default),
        )
    a = p.parse_args(argv)
    faults = FaultRates(**{name: getattr(a, name) for name in FaultRates().as_dict()})
    return Settings(
        host=a.host,
        port=a.port,
        latency=a.latency,
        jitter=a.jitter,
        api_key=a.api_key,
        seed=a.seed,
        batch_step_seconds=a.batch_step_seconds,
        image_bytes=a.image_bytes,
        faults=faults,
        max_concurrency=a.max_concurrency,
        request_log=a.request_log,
        record_calls=a.record_calls,
        c2pa=a.c2pa,
        c2pa_cert=a.c2pa_cert,
        c2pa_key=a.c2pa_key,
        c2pa_root_out=a.c2pa_root_out,
    )


if __name__ == "__main__":
    run(parse_args())

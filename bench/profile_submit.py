"""`python -m bench.profile_submit`: where one submit's CPU goes, in-process.

Runs N `POST /api/v1/generations` through Django's test client (no HTTP server, no
worker: jobs stay queued) against the database in `DATABASE_URL` — an empty database it
migrates and seeds — and prints the CPU per submit of this process and of its PostgreSQL
backend, the statements of one submit, and (with `--profile`) cProfile's own time grouped
by package. Example:

    createdb -h 127.0.0.1 -U postgres bunch_profile
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bunch_profile \\
        BUNCH_VAR_DIR=/tmp/bunch-profile .venv/bin/python -m bench.profile_submit --profile

Figures print; nothing is asserted.
"""

from __future__ import annotations

import argparse
import collections
import cProfile
import io
import os
import pstats
import time
from pathlib import Path
from typing import Any

BODY = '{"prompt": "a smiling astronaut [[bench:%d]]", "kind": "avatar"}'


def _backend_cpu_s(connection: Any) -> float:
    """utime + stime of this connection's PostgreSQL backend (0 on SQLite)."""
    if connection.vendor != "postgresql":
        return 0.0
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _by_package(profile: cProfile.Profile, n: int) -> list[tuple[float, float, str]]:
    own: collections.Counter[str] = collections.Counter()
    for (filename, _, _), (_, _, tottime, _, _) in pstats.Stats(profile).stats.items():  # type: ignore[attr-defined]
        if "site-packages/" in filename:
            parts = filename.split("site-packages/")[1].split("/")
            key = "/".join(parts[:2])
        elif "/bench/" not in filename and os.getcwd() in filename:
            key = "app: " + filename.split(os.getcwd() + "/")[1]
        else:
            key = "stdlib: " + filename.rsplit("/", 1)[-1]
        own[key] += tottime
    total = sum(own.values())
    return [(v / total * 100, v / n * 1000, k) for k, v in own.most_common(25)]


STEPS = (  # (label, file suffix, function) of the submit path, in request order
    ("API-key authentication", "tenants/authentication.py", "authenticate"),
    ("rate limits (one upsert)", "tenants/throttling.py", "allow_request"),
    ("request body validation (DRF)", "rest_framework/serializers.py", "is_valid"),
    ("job_submit (checks, estimate, the statement)", "generation/services.py", "job_submit"),
    ("202 body", "generation/serializers.py", "job_accepted_data"),
    ("response rendering", "rest_framework/response.py", "rendered_content"),
    ("the whole request in Django", "django/core/handlers/base.py", "get_response"),
)


def _steps(profile: cProfile.Profile, n: int) -> list[tuple[str, float]]:
    stats = pstats.Stats(profile).stats  # type: ignore[attr-defined]
    found = []
    for label, suffix, function in STEPS:
        total = sum(
            cumtime
            for (filename, _, name), (_, _, _, cumtime, _) in stats.items()
            if filename.endswith(suffix) and name == function
        )
        found.append((label, total / n * 1000))
    return found


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m bench.profile_submit", description=__doc__)
    p.add_argument("-n", type=int, default=1000, help="submits to measure (after 50 warm-up)")
    p.add_argument("--profile", action="store_true", help="also run under cProfile")
    args = p.parse_args()

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    call_command("migrate", verbosity=0)
    out = io.StringIO()
    call_command("seed_demo", stdout=out)
    key = out.getvalue().strip().splitlines()[-1]
    client = Client(HTTP_AUTHORIZATION=f"Bearer {key}")

    def submit(n: int) -> None:
        response = client.post("/api/v1/generations", BODY % n, content_type="application/json")
        assert response.status_code == 202, response.content

    for n in range(50):
        submit(n)
    with CaptureQueriesContext(connection) as queries:
        submit(10**9)
    print("statements of one submit:")
    for query in queries.captured_queries:
        print("  ", query["sql"][:110])

    backend_before, started, wall = _backend_cpu_s(connection), time.process_time(), time.time()
    for n in range(args.n):
        submit(1000 + n)
    cpu = time.process_time() - started
    backend = _backend_cpu_s(connection) - backend_before
    print(
        f"{args.n} submits: {cpu / args.n * 1000:.2f} ms CPU each in this process, "
        f"{backend / args.n * 1000:.2f} ms in its database backend, "
        f"{(time.time() - wall) / args.n * 1000:.2f} ms wall"
    )
    if args.profile:
        profile = cProfile.Profile()
        profile.enable()
        for n in range(args.n):
            submit(10**6 + n)
        profile.disable()
        print("steps, cumulative ms per submit (cProfile: wall time, database waits included):")
        for label, ms in _steps(profile, args.n):
            print(f"  {ms:6.3f} ms  {label}")
        print("own time by package (cProfile, which slows everything about 2x):")
        for share, ms, name in _by_package(profile, args.n):
            print(f"  {share:5.1f} %  {ms:6.3f} ms  {name}")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Bulk generation over Bunch's REST API: a CSV in, images and results.csv out.

Standard library only. Resumable: a state file in the output folder remembers the batch
and the rows already written; the batch is submitted with an Idempotency-Key, so a run
that dies right after submitting gets the same batch back instead of a second one.

    export BUNCH_API_KEY=bk_live_...
    python examples/bulk_client.py --csv prompts.csv --out out/ [--mode batch|realtime]
        [--template TEMPLATE_ID] [--base-url http://127.0.0.1:8000]

CSV: a `prompt` column (optional: key, label, kind, aspect_ratio, count, model), or with
--template, one column per template variable. Rows are keyed by `key` (else row-<n>).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

STATE_FILE = ".bulk_client_state.json"
ITEM_FIELDS = ("prompt", "kind", "aspect_ratio", "model", "label")


class Api:
    def __init__(self, base_url: str, api_key: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key

    def call(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> Any:
        url = path if path.startswith("http") else self.base_url + path
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(url, data=data, method=method)
        request.add_header("Authorization", f"Bearer {self.api_key}")
        request.add_header("Content-Type", "application/json")
        for name, value in (headers or {}).items():
            request.add_header(name, value)
        for attempt in range(6):
            try:
                with urllib.request.urlopen(request, timeout=120) as response:
                    raw = response.read()
                    kind = response.headers.get("Content-Type", "")
                    return json.loads(raw) if "json" in kind else raw
            except urllib.error.HTTPError as error:
                if error.code == 429 or error.code >= 500:
                    time.sleep(float(error.headers.get("Retry-After") or 2**attempt))
                    continue
                detail = error.read().decode(errors="replace")
                raise SystemExit(f"{method} {path} failed with {error.code}: {detail}") from None
        raise SystemExit(f"{method} {path} kept failing; try again later.")


def read_rows(path: Path) -> list[tuple[str, dict[str, str]]]:
    with path.open(newline="", encoding="utf-8-sig") as fh:
        rows = list(csv.DictReader(fh))
    out = []
    for n, row in enumerate(rows, 1):
        key = row.get("key") or row.get("id") or f"row-{n}"
        out.append((key, {k: v for k, v in row.items() if k and k not in ("key", "id") and v}))
    return out


def batch_body(rows: list[tuple[str, dict[str, str]]], args: argparse.Namespace) -> dict[str, Any]:
    body: dict[str, Any] = {"mode": args.mode, "name": f"bulk_client {args.csv.name}"}
    if args.template:
        body.update(
            template=args.template,
            rows=[{k: v for k, v in r.items() if k != "label"} for _, r in rows],
        )
        return body
    items = []
    for key, row in rows:
        item: dict[str, Any] = {k: row[k] for k in ITEM_FIELDS if k in row}
        item.setdefault("label", key)
        if "count" in row:
            item["count"] = int(row["count"])
        items.append(item)
    body["items"] = items
    return body


def load_state(out: Path) -> dict[str, Any]:
    path = out / STATE_FILE
    return json.loads(path.read_text()) if path.exists() else {"rows": {}, "submission": None}


def save_state(out: Path, state: dict[str, Any]) -> None:
    tmp = out / (STATE_FILE + ".tmp")
    tmp.write_text(json.dumps(state, indent=1))
    os.replace(tmp, out / STATE_FILE)


def bar(done: int, total: int, note: str) -> None:
    width = 30
    filled = int(width * done / total) if total else width
    sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} {note}   ")
    sys.stderr.flush()


def collect(api: Api, out: Path, state: dict[str, Any], batch_id: str) -> None:
    keys = state["submission"]["rows"]
    url: str | None = f"/api/v1/batches/{batch_id}/items?limit=500"
    while url:
        page = api.call("GET", url)
        for item in page["results"]:
            job, key = item["job"], keys[item["index"]]
            if (
                job["status"] in ("queued", "running")
                or state["rows"].get(key, {}).get("job_id") == job["id"]
            ):
                continue
            files = []
            for image in job["images"]:
                name = f"images/{key}-{image['index']}.png"
                (out / "images").mkdir(exist_ok=True)
                (out / name).write_bytes(api.call("GET", image["download_url"]))
                files.append(name)
            error = job.get("error") or {}
            state["rows"][key] = {
                "status": job["status"],
                "files": files,
                "job_id": job["id"],
                "error_code": error.get("code", ""),
            }
            save_state(out, state)
        url = page.get("next")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--csv", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--mode", choices=["batch", "realtime"], default="batch")
    parser.add_argument("--template")
    parser.add_argument(
        "--base-url", default=os.environ.get("BUNCH_BASE_URL", "http://127.0.0.1:8000")
    )
    parser.add_argument("--api-key", default=os.environ.get("BUNCH_API_KEY"))
    parser.add_argument("--poll-interval", type=float, default=10.0)
    args = parser.parse_args()
    if not args.api_key:
        raise SystemExit("Set BUNCH_API_KEY or pass --api-key.")
    api = Api(args.base_url, args.api_key)
    args.out.mkdir(parents=True, exist_ok=True)
    rows = read_rows(args.csv)
    state = load_state(args.out)

    submission = state["submission"]
    if submission is None or submission.get("collected"):
        todo = [(k, r) for k, r in rows if state["rows"].get(k, {}).get("status") != "succeeded"]
        if todo:
            submission = {"key": uuid.uuid4().hex, "rows": [k for k, _ in todo], "batch_id": None}
            state["submission"] = submission
            save_state(args.out, state)
    if submission and not submission.get("collected"):
        if not submission["batch_id"]:
            todo = [(k, r) for k, r in rows if k in set(submission["rows"])]
            created = api.call(
                "POST",
                "/api/v1/batches",
                batch_body(todo, args),
                headers={"Idempotency-Key": submission["key"]},
            )
            submission["batch_id"] = created["id"]
            save_state(args.out, state)
        while True:
            batch = api.call("GET", f"/api/v1/batches/{submission['batch_id']}")
            collect(api, args.out, state, submission["batch_id"])
            done = sum(1 for r in state["rows"].values() if r["status"] == "succeeded")
            bar(done, len(rows), f"{batch['status']} · ${batch['actual_cost']}")
            if batch["status"] in ("succeeded", "failed", "canceled"):
                collect(api, args.out, state, submission["batch_id"])
                submission["collected"] = True
                save_state(args.out, state)
                break
            time.sleep(args.poll_interval)
    with (args.out / "results.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["key", "status", "files", "error_code", "job_id"])
        for key, _ in rows:
            row = state["rows"].get(key, {})
            writer.writerow(
                [
                    key,
                    row.get("status", "pending"),
                    " ".join(row.get("files", [])),
                    row.get("error_code", ""),
                    row.get("job_id", ""),
                ]
            )
    sys.stderr.write(f"\nResults: {args.out / 'results.csv'}\n")


if __name__ == "__main__":
    main()

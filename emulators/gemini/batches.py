"""The Batch API and the Files API (resumable upload, download), in memory.

A job moves PENDING -> RUNNING -> SUCCEEDED, one `batch_step_seconds` per step; items run
through the same generateContent code as online calls (triggers apply per item, random fault
rates do not). `[[expire]]` in any item, or POST /_emulator/batches/{id}:expire, ends a job
EXPIRED.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from aiohttp import web

from . import core

if TYPE_CHECKING:
    from .server import Emulator, Handler

TERMINAL = {
    "BATCH_STATE_SUCCEEDED",
    "BATCH_STATE_FAILED",
    "BATCH_STATE_CANCELLED",
    "BATCH_STATE_EXPIRED",
}
_BATCH_TYPE = "type.googleapis.com/google.ai.generativelanguage.v1main.GenerateContentBatch"
_OUTPUT_TYPE = "type.googleapis.com/google.ai.generativelanguage.v1main.GenerateContentBatchOutput"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


@dataclass
class StoredFile:
    id: str
    display_name: str
    mime_type: str
    data: bytes
    source: str  # UPLOADED | GENERATED
    created: str = field(default_factory=_now)

    def resource(self, base: str) -> dict[str, Any]:
        out = {
            "name": f"files/{self.id}",
            "displayName": self.display_name,
            "mimeType": self.mime_type,
            "sizeBytes": str(len(self.data)),
            "createTime": self.created,
            "updateTime": self.created,
            "expirationTime": (datetime.now(UTC) + timedelta(hours=48))
            .isoformat()
            .replace("+00:00", "Z"),
            "sha256Hash": base64.b64encode(hashlib.sha256(self.data).hexdigest().encode()).decode(),
            "uri": f"{base}/v1beta/files/{self.id}",
            "state": "ACTIVE",
            "source": self.source,
        }
        if self.source == "GENERATED":
            out["downloadUri"] = f"{base}/v1beta/files/{self.id}:download?alt=media"
        return out


@dataclass
class BatchJob:
    id: str
    model: str
    display_name: str
    items: list[tuple[dict[str, Any], dict[str, Any]]]  # (metadata, request)
    from_file: bool
    state: str = "BATCH_STATE_PENDING"
    created: str = field(default_factory=_now)
    updated: str = field(default_factory=_now)
    ended: str | None = None
    results: list[dict[str, Any]] = field(default_factory=list)
    output_file: str | None = None
    task: asyncio.Task[None] | None = None

    def set_state(self, state: str) -> None:
        self.state = state
        self.updated = _now()
        if state in TERMINAL:
            self.ended = self.updated

    def resource(self) -> dict[str, Any]:
        failed = sum(1 for r in self.results if "error" in r)
        done = self.state == "BATCH_STATE_SUCCEEDED"
        meta: dict[str, Any] = {
            "@type": _BATCH_TYPE,
            "model": f"models/{self.model}",
            "displayName": self.display_name,
            "name": f"batches/{self.id}",
            "createTime": self.created,
            "updateTime": self.updated,
            "state": self.state,
            "batchStats": {
                "requestCount": str(len(self.items)),
                "successfulRequestCount": str(len(self.results) - failed if done else 0),
                "failedRequestCount": str(failed if done else 0),
                "pendingRequestCount": str(0 if self.state in TERMINAL else len(self.items)),
            },
        }
        if self.ended:
            meta["endTime"] = self.ended
        op: dict[str, Any] = {
            "name": f"batches/{self.id}",
            "metadata": meta,
            "done": self.state in TERMINAL,
        }
        if done:
            if self.from_file:
                output: dict[str, Any] = {"responsesFile": f"files/{self.output_file}"}
            else:
                output = {"inlinedResponses": {"inlinedResponses": self.results}}
            meta["output"] = output
            op["response"] = {"@type": _OUTPUT_TYPE, **output}
        return op


class BatchService:
    def __init__(self, emulator: Emulator) -> None:
        self.emulator = emulator
        self.files: dict[str, StoredFile] = {}
        self.uploads: dict[str, dict[str, Any]] = {}
        self.jobs: dict[str, BatchJob] = {}

    def routes(self, v: str) -> list[tuple[str, re.Pattern[str], Handler]]:
        return [
            ("POST", re.compile(v + r"/models/([^/:]+):batchGenerateContent"), self.create),
            ("GET", re.compile(v + r"/batches"), self.list),
            ("GET", re.compile(v + r"/batches/([^/:]+)"), self.get),
            ("POST", re.compile(v + r"/batches/([^/:]+):cancel"), self.cancel),
            ("DELETE", re.compile(v + r"/batches/([^/:]+)"), self.delete),
            ("POST", re.compile(r"/upload" + v + r"/files"), self.upload),
            ("GET", re.compile(v + r"/files"), self.list_files),
            ("GET", re.compile(v + r"/files/([^/:]+)"), self.get_file),
            ("DELETE", re.compile(v + r"/files/([^/:]+)"), self.delete_file),
            ("GET", re.compile(v + r"/files/([^/:]+):download"), self.download),
            ("POST", re.compile(r"/_emulator/batches/([^/:]+):expire"), self.expire),
        ]

    @staticmethod
    def is_upload_chunk(request: web.Request) -> bool:
        # The upload URL is the capability for chunk requests, as with Google's resumable uploads.
        return request.path.startswith("/upload/") and "upload_id" in request.query

    @staticmethod
    def base_url(request: web.Request) -> str:
        return f"{request.scheme}://{request.host}"

    # --- Files ----------------------------------------------------------------------------

    async def upload(self, request: web.Request) -> web.Response:
        command = request.headers.get("X-Goog-Upload-Command", "").lower()
        upload_id = request.query.get("upload_id")
        if upload_id is None:
            if "start" not in command:
                raise core.ApiError(
                    400, "Only resumable uploads are supported: send X-Goog-Upload-Command: start."
                )
            body = await self.emulator.read_json(request)
            meta = core.pick(body, "file") or {}
            upload_id = uuid.uuid4().hex
            self.uploads[upload_id] = {
                "meta": meta,
                "mime": request.headers.get("X-Goog-Upload-Header-Content-Type")
                or core.pick(meta, "mimeType")
                or "application/octet-stream",
                "data": bytearray(),
            }
            query = f"upload_id={upload_id}&upload_protocol=resumable"
            url = f"{self.base_url(request)}/upload/v1beta/files?{query}"
            return web.json_response(
                {}, headers={"X-Goog-Upload-URL": url, "X-Goog-Upload-Status": "active"}
            )
        pending = self.uploads.get(upload_id)
        if pending is None:
            raise core.ApiError(404, "Upload session not found.")
        pending["data"] += await request.read()
        if "finalize" not in command:
            return web.json_response({}, headers={"X-Goog-Upload-Status": "active"})
        del self.uploads[upload_id]
        meta = pending["meta"]
        file_id = str(core.pick(meta, "name") or "").removeprefix("files/") or uuid.uuid4().hex[:12]
        stored = StoredFile(
            file_id,
            core.pick(meta, "displayName") or file_id,
            pending["mime"],
            bytes(pending["data"]),
            "UPLOADED",
        )
        self.files[file_id] = stored
        return web.json_response(
            {"file": stored.resource(self.base_url(request))},
            headers={"X-Goog-Upload-Status": "final"},
        )

    def file(self, file_id: str) -> StoredFile:
        found = self.files.get(file_id.removeprefix("files/"))
        if found is None:
            raise core.ApiError(
                403, f"You do not have permission to access the File {file_id} or it may not exist."
            )
        return found

    async def get_file(self, request: web.Request, file_id: str) -> web.Response:
        return web.json_response(self.file(file_id).resource(self.base_url(request)))

    async def list_files(self, request: web.Request) -> web.Response:
        return web.json_response(
            {"files": [f.resource(self.base_url(request)) for f in self.files.values()]}
        )

    async def delete_file(self, _request: web.Request, file_id: str) -> web.Response:
        self.files.pop(self.file(file_id).id)
        return web.json_response({})

    async def download(self, _request: web.Request, file_id: str) -> web.Response:
        stored = self.file(file_id)
        return web.Response(body=stored.data, content_type=stored.mime_type.split(";")[0])

    # --- Batches --------------------------------------------------------------------------

    def _items_from_file(self, name: str) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        items = []
        for number, line in enumerate(self.file(name).data.decode("utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise core.ApiError(400, f"Invalid JSON on line {number} of {name}: {exc}") from exc
            request = core.pick(row, "request")
            if not isinstance(request, dict):
                raise core.ApiError(400, f"Line {number} of {name} has no 'request' object.")
            items.append(({"key": row.get("key", str(number))}, request))
        return items

    async def create(self, request: web.Request, model_id: str) -> web.Response:
        model = self.emulator.model(model_id)
        batch = core.pick(await self.emulator.read_json(request), "batch") or {}
        source = core.pick(batch, "inputConfig") or {}
        file_name = core.pick(source, "fileName")
        if file_name:
            items = self._items_from_file(file_name)
        else:
            rows = core.pick(core.pick(source, "requests") or {}, "requests") or []
            items = [(core.pick(r, "metadata") or {}, core.pick(r, "request") or {}) for r in rows]
        if not items:
            raise core.ApiError(400, "Batch input has no requests.")
        job = BatchJob(
            uuid.uuid4().hex[:16],
            model.model_id,
            core.pick(batch, "displayName") or "",
            items,
            bool(file_name),
        )
        self.jobs[job.id] = job
        job.task = asyncio.ensure_future(self._run(job, self.base_url(request)))
        return web.json_response(job.resource())

    async def _run(self, job: BatchJob, base: str) -> None:
        await asyncio.sleep(self.emulator.settings.batch_step_seconds)
        job.set_state("BATCH_STATE_RUNNING")
        results = [await self._item(job.model, meta, req) for meta, req in job.items]
        await asyncio.sleep(self.emulator.settings.batch_step_seconds)
        if job.state in TERMINAL:
            return
        if any("[[expire]]" in json.dumps(req) for _, req in job.items):
            job.set_state("BATCH_STATE_EXPIRED")
            return
        job.results = results
        if job.from_file:
            lines = []
            for (meta, _), result in zip(job.items, results, strict=True):
                row = {"key": meta.get("key")}
                row.update({k: v for k, v in result.items() if k != "metadata"})
                lines.append(json.dumps(row))
            out = StoredFile(
                f"batch-{job.id}",
                f"batch-{job.id}-results",
                "application/jsonl",
                ("\n".join(lines) + "\n").encode(),
                "GENERATED",
            )
            self.files[out.id] = out
            job.output_file = out.id
        job.set_state("BATCH_STATE_SUCCEEDED")

    async def _item(
        self, model_id: str, meta: dict[str, Any], request: dict[str, Any]
    ) -> dict[str, Any]:
        emu = self.emulator
        model = emu.model(model_id)
        try:
            parsed = core.parse(model, request)
            decision = emu.faults.decide(parsed.prompt, apply_rates=False)
            if decision.error_code is not None:
                raise core.ApiError(decision.error_code)
            if decision.outcome in ("html502", "drop"):
                raise core.ApiError(500)
            if decision.outcome:
                response = core.special_response(model, parsed, decision.outcome)
            else:
                response = await core.image_response(
                    model,
                    parsed,
                    cache=emu.cache,
                    executor=emu.executor,
                    seed=emu.settings.seed,
                    realistic=emu.settings.image_bytes == "realistic",
                )
            emu.stats.record(model.model_id, "batch_ok")
            return {"response": response, "metadata": meta}
        except core.ApiError as exc:
            emu.stats.record(model.model_id, f"batch_error_{exc.code}")
            return {
                "error": {"code": exc.code, "message": exc.message, "status": exc.status},
                "metadata": meta,
            }

    def job(self, job_id: str) -> BatchJob:
        found = self.jobs.get(job_id)
        if found is None:
            raise core.ApiError(404, f"Batch batches/{job_id} not found.")
        return found

    async def get(self, _request: web.Request, job_id: str) -> web.Response:
        return web.json_response(self.job(job_id).resource())

    async def list(self, request: web.Request) -> web.Response:
        jobs = sorted(self.jobs.values(), key=lambda j: j.created, reverse=True)
        size = int(request.query.get("pageSize") or request.query.get("page_size") or 50)
        start = int(request.query.get("pageToken") or request.query.get("page_token") or 0)
        page = jobs[start : start + size]
        body: dict[str, Any] = {"operations": [j.resource() for j in page]}
        if start + size < len(jobs):
            body["nextPageToken"] = str(start + size)
        return web.json_response(body)

    def _stop(self, job: BatchJob, state: str) -> None:
        if job.state in TERMINAL:
            raise core.ApiError(400, f"Batch batches/{job.id} is already {job.state}.")
        if job.task is not None:
            job.task.cancel()
        job.set_state(state)

    async def cancel(self, _request: web.Request, job_id: str) -> web.Response:
        self._stop(self.job(job_id), "BATCH_STATE_CANCELLED")
        return web.json_response({})

    async def expire(self, _request: web.Request, job_id: str) -> web.Response:
        job = self.job(job_id)
        self._stop(job, "BATCH_STATE_EXPIRED")
        return web.json_response(job.resource())

    async def delete(self, _request: web.Request, job_id: str) -> web.Response:
        job = self.jobs.pop(self.job(job_id).id)
        if job.task is not None:
            job.task.cancel()
        return web.json_response({})

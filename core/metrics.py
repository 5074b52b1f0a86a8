"""The process-side Prometheus metrics: counters and histograms that web and worker
processes add to as work happens (docs/operations.md lists every metric).

prometheus-client runs in multiprocess mode: settings point `PROMETHEUS_MULTIPROC_DIR` at a
directory before this module is imported, each process writes its own files there, and
`/metrics` (and `manage.py metrics_serve` on a worker host) adds them up. What is a state of
the database (queue depth, Stripe backlog, pending deliveries) is not counted here but read
when scraped (`ops/collectors.py`), so it is exact whichever process did the work.

Labels are bounded: a model tier, a mode, a plan slug, an outcome, a route; never a tenant id.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

# Seconds; the model's own latency is about 4 s (Lite) to 12 s (Pro).
MODEL_BUCKETS = (0.5, 1, 2, 3, 4, 5, 6, 8, 10, 12, 15, 20, 30, 60, 120)
REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)

http_requests = Counter(
    "bunch_http_requests",
    "HTTP requests answered, by route pattern, method and status code.",
    ["route", "method", "status"],
)
http_request_duration = Histogram(
    "bunch_http_request_duration_seconds",
    "Time to answer an HTTP request, by route pattern.",
    ["route"],
    buckets=REQUEST_BUCKETS,
)
jobs_submitted = Counter(
    "bunch_jobs_submitted",
    "Jobs accepted, by model tier, mode and tenant plan.",
    ["model", "mode", "plan"],
)
jobs_started = Counter(
    "bunch_jobs_started",
    "Jobs a worker began to run, by model tier, mode and tenant plan.",
    ["model", "mode", "plan"],
)
jobs_finished = Counter(
    "bunch_jobs_finished",
    "Jobs finished, by final status, model tier, mode and tenant plan.",
    ["status", "model", "mode", "plan"],
)
provider_calls = Counter(
    "bunch_provider_calls",
    "Calls to the image model, by model id and outcome "
    "(ok, rate_limited, server_error, timeout, safety, error).",
    ["model", "outcome"],
)
provider_call_duration = Histogram(
    "bunch_provider_call_duration_seconds",
    "Time of one call to the image model, answered or not, by model id.",
    ["model"],
    buckets=MODEL_BUCKETS,
)
images_stored = Counter(
    "bunch_images_stored", "Generated images stored, by model tier and mode.", ["model", "mode"]
)
image_bytes_stored = Counter(
    "bunch_image_bytes_stored", "Bytes of generated images stored.", ["model", "mode"]
)
webhook_deliveries = Counter(
    "bunch_webhook_deliveries",
    "Webhook delivery attempts, by outcome (succeeded, retrying, failed).",
    ["outcome"],
)
stripe_meter_events = Counter(
    "bunch_stripe_meter_events",
    "Usage events sent to Stripe by the meter sync, by outcome (sent, retrying, failed).",
    ["outcome"],
)

# Provider outcomes by the typed error's code (generation/providers/types.py).
OUTCOME_FOR_CODE = {
    "rate_limited": "rate_limited",
    "provider_unavailable": "server_error",
    "provider_error": "server_error",
    "provider_timeout": "timeout",
    "provider_connection_error": "timeout",
    "prompt_blocked": "safety",
    "image_refused": "safety",
    "no_image": "safety",
}


def provider_outcome(code: str | None) -> str:
    return "ok" if code is None else OUTCOME_FOR_CODE.get(code, "error")

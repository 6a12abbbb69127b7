"""The server's Prometheus metrics (docs/operations.md lists them with their labels).

Counters and histograms live in REGISTRY, one per process: a replica exposes its own, and
Prometheus sums them over replicas. The job-state gauges (queue depth, oldest pending job)
are not kept here: grpc_server.metrics_endpoint reads them from the shared store at scrape
time, so every replica reports the same truth.

Label values come from a bounded set: operations, outcomes, configured provider names and
store method names. The `model` label is the model as requested, which a caller chooses:
keep models restricted (virtual keys' allowed_models) where callers are not trusted.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from grpc_server.domain.failures import ProviderError

REGISTRY = CollectorRegistry(auto_describe=True)

_SLOW_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600, 1800, 3600)
"""Provider calls and queue waits: from a local resize to an hour-long generation."""
_STORE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

JOBS_SUBMITTED = Counter(
    "asyncgate_jobs_submitted", "Jobs accepted and stored, by operation.", ["operation"], registry=REGISTRY
)
JOBS_ENDED = Counter(
    "asyncgate_jobs_ended",
    "Jobs that reached a terminal state on this replica, by operation and outcome (completed, failed).",
    ["operation", "outcome"],
    registry=REGISTRY,
)
CLAIM_WAIT = Histogram(
    "asyncgate_job_claim_wait_seconds",
    "Time from submission to being claimed by a worker, by operation.",
    ["operation"],
    buckets=_SLOW_BUCKETS,
    registry=REGISTRY,
)
INPUT_BYTES = Counter(
    "asyncgate_input_bytes",
    "Bytes of input files (uploads) stored with new jobs, by operation.",
    ["operation"],
    registry=REGISTRY,
)
PROVIDER_CALLS = Histogram(
    "asyncgate_provider_call_seconds",
    "Provider call attempts and their duration, by provider, model and outcome.",
    ["provider", "model", "outcome"],
    buckets=_SLOW_BUCKETS,
    registry=REGISTRY,
)
WEBHOOK_DELIVERIES = Counter(
    "asyncgate_webhook_deliveries",
    "Webhook delivery attempts made by this replica, by endpoint and what followed: delivered,"
    " retry (due again later), given_up, disabled (the endpoint answered 410).",
    ["endpoint", "outcome"],
    registry=REGISTRY,
)
ADMISSION_REFUSALS = Counter(
    "asyncgate_admission_refusals",
    "Submits refused by a virtual key's limit, by reason (rate_limited, too_many_jobs_in_flight).",
    ["reason"],
    registry=REGISTRY,
)
RETRIES = Counter(
    "asyncgate_provider_retries",
    "Attempts retried on the same model after a retryable failure, by provider.",
    ["provider"],
    registry=REGISTRY,
)
FALLBACKS = Counter(
    "asyncgate_fallbacks",
    "Fallbacks taken to the next model of a chain, by the provider fallen back to.",
    ["provider"],
    registry=REGISTRY,
)
JOB_POLLS = Counter(
    "asyncgate_job_polls",
    "Polls of a job (GetJob), by what answered: store (the job read) or cache (an ended job's"
    " answer this replica kept, no read).",
    ["source"],
    registry=REGISTRY,
)
STORE_OPERATIONS = Histogram(
    "asyncgate_store_operation_seconds",
    "Store operations and their duration, by method and outcome (ok, unavailable).",
    ["method", "outcome"],
    buckets=_STORE_BUCKETS,
    registry=REGISTRY,
)

JOB_WAITERS = Gauge(
    "asyncgate_job_waiters",
    "WaitJob (kind wait) and WatchJob (kind watch) calls waiting on this replica now; the bridge holds"
    " one per REST `Prefer: wait`, event stream or OpenAI-compatible request waiting on a job.",
    ["kind"],
    registry=REGISTRY,
)
for _kind in ("wait", "watch"):  # both series exist from the start, at 0
    JOB_WAITERS.labels(_kind)


def provider_outcome(error: ProviderError | None) -> str:
    """A provider attempt's outcome label: ok, timeout, unreachable, rate_limited,
    client_error (4xx, gateway refusals included) or server_error."""
    if error is None:
        return "ok"
    if error.type == "timeout":
        return "timeout"
    if error.type == "connection_error":
        return "unreachable"
    if error.status_code == 429:
        return "rate_limited"
    status = error.status_code or 0  # None: no answer came
    return "client_error" if 400 <= status < 500 else "server_error"

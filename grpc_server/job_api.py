"""What callers can do with jobs, independent of gRPC: submit, read, read outputs, cancel,
retry, delete.

The servicer converts protos and calls these; every business rule of the request path
lives here, in domain/ or in the operation's slice: the field rules before anything is
stored, the virtual key binding, expiry on read, capability checks on outputs.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar, cast

from grpc_server.capabilities import Capabilities
from grpc_server.config import ServerConfig, VirtualKey
from grpc_server.domain.errors import (
    IdempotencyKeyReused,
    InvalidArgument,
    JobFinished,
    JobNotRetryable,
    NotFound,
    OperationTypeMismatch,
    PermissionDenied,
    Unauthenticated,
)
from grpc_server.domain.jobs import (
    IDEMPOTENCY_WINDOW_SECONDS,
    InputFile,
    Job,
    JobParams,
    JobStatus,
    OutputInfo,
    RequestType,
    cancelled_error,
    new_job_id,
)
from grpc_server.domain.keys import model_allowed
from grpc_server.domain.states import RETRYABLE
from grpc_server.domain.ttl import resolve_ttl
from grpc_server.ended_jobs import EndedJobs
from grpc_server.image_work import ImageWork
from grpc_server.images import ImageInfo, inspect_image
from grpc_server.jobs_list import ListQuery, Page, encode_token
from grpc_server.jobs_options import check_labels, check_request_id, request_digest
from grpc_server.keyring import Caller, KeyRing
from grpc_server.metrics import JOB_POLLS, JOB_WAITERS
from grpc_server.operations.base import Operation, SubmitShape
from grpc_server.providers.registry import ProviderRegistry
from grpc_server.staging import StagingFile
from grpc_server.store.admission import AdmissionLimits, KeyPolicy
from grpc_server.store.base import DuplicateRequestId, JobStore, StagedFile, StoreEvent
from grpc_server.watch import JobChanges
from grpc_server.webhooks.endpoints import check_webhook

A = TypeVar("A")
_POLLED_FROM_CACHE, _POLLED_FROM_STORE = JOB_POLLS.labels("cache"), JOB_POLLS.labels("store")


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Accepted:
    """A submit's job, and whether it was made by an earlier request with the same request id."""

    job: Job
    replayed: bool = False


@dataclass(frozen=True)
class OutputStream:
    info: OutputInfo
    chunks: AsyncIterator[bytes]


def key_policy(config: ServerConfig) -> KeyPolicy:
    """What the store needs of the configured keys: limits, priorities, fair share or not."""
    keys = config.virtual_keys
    return KeyPolicy(
        limits={
            k.id: AdmissionLimits(k.max_jobs_in_flight, k.submits_per_minute)
            for k in keys
            if k.max_jobs_in_flight is not None or k.submits_per_minute is not None
        },
        priorities={k.id: k.priority for k in keys if k.priority},
        fair_share=config.dispatcher.fair_share,
    )


def _check_allowed(key: VirtualKey | None, model: str, param: str) -> None:
    if not model_allowed(model, key.allowed_models if key else ()):
        raise PermissionDenied(f"this virtual key may not use model {model!r}", param)


class JobApi:
    def __init__(
        self,
        config: ServerConfig,
        store: JobStore,
        registry: ProviderRegistry,
        keyring: KeyRing,
        capabilities: Capabilities,
        image_work: ImageWork,
        on_submit: Callable[[], None] = lambda: None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.config = config
        self._store = store
        self._registry = registry
        self._keyring = keyring
        self.capabilities = capabilities
        self._image_work = image_work
        self._on_submit = on_submit
        self._clock = clock
        self.changes = JobChanges()
        self._listening = False
        self.ended: EndedJobs[object] = EndedJobs(store.hears_every_write)
        """Answers to polls of ended jobs (one kind of answer: the servicer's, see poll)."""
        # The keys' limits are checked by the store, in the transaction that inserts a job (so
        # they hold across replicas); their priorities order the dispatcher's claims.
        store.use_key_policy(key_policy(config))

    async def _listen(self) -> None:
        """Hear the store's events (every replica's, on PostgreSQL) from the first wait on (or,
        where they may answer polls, the first poll)."""
        if not self._listening:
            self._listening = True
            await self._store.subscribe(self._on_event)

    def _on_event(self, event: StoreEvent) -> None:
        self.changes.on_event(event)
        self.ended.on_event(event)

    def caller(self, headers: Mapping[str, str]) -> VirtualKey | None:
        """The caller's virtual key (None when keyless and allowed); raises when refused.
        Checked from headers alone, so an upload can be refused before its body is read."""
        return self._keyring.resolve(headers)

    def require_admin(self, headers: Mapping[str, str]) -> Caller:
        """The caller of an admin-only path; PermissionDenied (403) for a key or a non-admin
        token, Unauthenticated (401) for a caller with neither (KeyRing.require_admin)."""
        return self._keyring.require_admin(headers)

    def check_caller(self, headers: Mapping[str, str], model: str | None) -> None:
        """Refuse the caller as a submit would, from its key (and the model, when known) alone."""
        key = self.caller(headers)
        if model is not None:
            _check_allowed(key, model, "model")

    async def submit(
        self,
        operation: Operation[Any, Any],
        params: JobParams,
        files: Sequence[StagingFile],
        headers: Mapping[str, str],
        *,
        stream: bool = False,
        ttl_seconds: int | None = None,
        request_id: str = "",
        labels: Mapping[str, str] | None = None,
        webhook: str = "",
    ) -> Accepted:
        """Check a request against every rule, then persist it as a pending job (or, for a request
        id this caller used within the window, answer the job that id made)."""
        key = self.caller(headers)
        idempotency_key = check_request_id(request_id)
        job_labels = check_labels(labels or {})
        if webhook:
            await check_webhook(webhook, self.config.webhooks, self._store)
        images = [f for f in files if f.role == "image"]
        mask = next((f for f in files if f.role == "mask"), None)
        operation.validate(params, SubmitShape(len(images), mask is not None, stream), self.config)
        self._check_models(params, operation.request_type, key)
        inputs = await self._inspect_files(operation, images, mask) if files else []
        job = self._new_job(operation.request_type, params, key, ttl_seconds, inputs, job_labels, webhook)
        if idempotency_key is None:
            return Accepted(await self._accept(job, inputs))
        digest = await request_digest(operation.request_type, params, inputs, ttl_seconds, job_labels)
        return await self._accept_once(
            replace(job, idempotency_key=idempotency_key, request_hash=digest), inputs
        )

    async def _accept_once(self, job: Job, inputs: list[StagedFile]) -> Accepted:
        """Create the job unless its request id names a live one: a unique index in the store
        decides between racing requests, on any replica."""
        for _ in range(2):  # a second time only if the holder of the id aged out meanwhile
            if (earlier := await self._job_of_request_id(job)) is not None:
                return Accepted(await self._as_answered(earlier), replayed=True)
            try:
                return Accepted(await self._accept(job, inputs))
            except DuplicateRequestId:
                continue  # another request made it first: read that one
        raise IdempotencyKeyReused("request_id")

    async def _job_of_request_id(self, job: Job) -> Job | None:
        """The live job holding this job's request id; refuses a different request using it."""
        assert job.idempotency_key is not None
        earlier = await self._store.job_by_request_id(job.owner_key_id, job.idempotency_key)
        if earlier is None:
            return None
        age = (self._clock() - earlier.created_at).total_seconds()
        if age >= IDEMPOTENCY_WINDOW_SECONDS:
            await self._store.forget_stale_request_id(job.owner_key_id, job.idempotency_key, self._clock())
            return None
        if earlier.request_hash != job.request_hash:
            raise IdempotencyKeyReused("request_id")
        return earlier

    def _new_job(
        self,
        request_type: RequestType,
        params: JobParams,
        key: VirtualKey | None,
        ttl_seconds: int | None,
        inputs: list[StagedFile],
        labels: dict[str, str],
        webhook: str,
    ) -> Job:
        return Job(
            id=new_job_id(),
            request_type=request_type,
            status=JobStatus.PENDING,
            params=params,
            created_at=self._clock(),
            ttl_seconds=resolve_ttl(
                ttl_seconds, self.config.default_ttl_seconds, self.config.max_ttl_seconds
            ),
            owner_key_id=key.id if key else None,
            inputs=tuple(s.info for s in inputs),
            labels=labels,
            webhook=webhook or None,
        )

    async def _accept(self, job: Job, inputs: list[StagedFile]) -> Job:
        """Persist a validated job with its inputs, then wake the dispatcher."""
        await self._store.create_job(job, inputs)
        self._on_submit()
        return job

    def _check_models(self, params: JobParams, request_type: RequestType, key: VirtualKey | None) -> None:
        """The key may use every model of the chain, and at least one of them can run the job."""
        for model in params.models():
            _check_allowed(key, model, "model" if model == params.model else "fallbacks")
        if not any(self._registry.supports(model, request_type) for model in params.models()):
            raise InvalidArgument(
                f"model {params.model!r} cannot run {request_type.value}: its provider is not configured"
                " or does not offer it (and no fallback does)",
                "model",
            )

    async def _inspect_files(
        self, operation: Operation[Any, Any], images: list[StagingFile], mask: StagingFile | None
    ) -> list[StagedFile]:
        """Every file identified and verified on the image threads, within the pixel budget."""
        files = [*images, *([mask] if mask else [])]
        infos = [await self._image_work.run(self._inspect, f) for f in files]
        operation.check_images(infos[: len(images)], infos[-1] if mask else None)
        return [
            StagedFile(
                InputFile(f.role, f.index, f.filename, info.content_type, f.size, info.width, info.height),
                f.source,
            )
            for f, info in zip(files, infos, strict=True)
        ]

    def _inspect(self, staged: StagingFile) -> ImageInfo:
        return inspect_image(
            staged.source,
            param=staged.param,
            label=staged.label,
            max_pixels=self.config.max_image_pixels,
            reserve=self._image_work.budget.reserve,
        )

    async def get_job(
        self, job_id: str, headers: Mapping[str, str], request_type: RequestType | None = None
    ) -> Job:
        job = await self._readable_job(job_id, self._keyring.identify(headers))
        if request_type is not None and job.request_type != request_type:
            raise OperationTypeMismatch()
        return await self._as_answered(job)

    async def poll(
        self,
        job_id: str,
        headers: Mapping[str, str],
        request_type: RequestType | None,
        render: Callable[[Job], A],
    ) -> A:
        """render(get_job(...)), where an ended job's answer is kept and reused (ended_jobs): on
        SQLite without reading the store again, elsewhere once a read shows the same state. The
        caller's right to the job, its operation and its expiry are checked on every poll.
        `render` must be the same for every poll: the one GetJob answers with."""
        caller = self._keyring.identify(headers)
        ended = self.ended.get(job_id)
        if ended is not None:
            _POLLED_FROM_CACHE.inc()
            if ended.is_expired(self._clock()) or not caller.may_read(ended.owner_key_id):
                raise NotFound("job not found")
            if request_type is not None and ended.request_type != request_type:
                raise OperationTypeMismatch()
            return cast(A, ended.answer)
        _POLLED_FROM_STORE.inc()
        if self.ended.trusted:
            await self._listen()  # before the read: an event from then on must reach the entries
        mark = self.ended.reading()
        job = await self._readable_job(job_id, caller)
        if request_type is not None and job.request_type != request_type:
            raise OperationTypeMismatch()
        if not job.is_terminal:
            return render(await self._as_answered(job))
        kept = self.ended.kept(job)
        if kept is not None:
            return cast(A, kept)
        answer = render(await self._as_answered(job))  # its URLs valid until it expires: kept as is
        self.ended.put(job, answer, mark)
        return answer

    async def _as_answered(self, job: Job) -> Job:
        """The job with what is computed on read: a pending job's place in the queue; a completed
        job's pre-signed output URLs, when its blob store gives them."""
        if job.status == JobStatus.PENDING:
            return replace(job, queue_position=await self._store.queue_position(job))
        if job.outputs_token is None or job.result is None or job.expires_at is None:
            return job
        valid_for = job.expires_at - self._clock()
        if valid_for <= timedelta(0):
            return job
        urls = {}
        for index in job.result.stored_indexes:
            url = await self._store.output_url(job, index, valid_for)
            if url is None:
                return job  # this blob store gives none
            urls[index] = url
        return replace(job, output_urls=urls)

    async def cancel_job(self, job_id: str, headers: Mapping[str, str]) -> Job:
        """Cancel a job that has not ended (the worker running it, on any replica, hears the
        store's event and aborts its provider call). The job as it then is: cancelled, or the
        terminal status it reached first. A job that had ended before the call: JobFinished."""
        job = await self._caller_job(job_id, headers)
        if job.is_terminal:
            raise JobFinished(job.status.value)
        cancelled = await self._store.cancel_job(
            job.id, cancelled_error(job, str(uuid.uuid4())), self._clock()
        )
        return cancelled if cancelled is not None else await self._live_job(job.id)

    async def retry_job(self, job_id: str, headers: Mapping[str, str]) -> Job:
        """Run a failed or cancelled job again from its stored inputs; JobNotRetryable otherwise."""
        job = await self._caller_job(job_id, headers)
        if job.status not in RETRYABLE:
            raise JobNotRetryable(job.status.value)
        retried = await self._store.retry_job(job.id)
        if retried is None:  # it changed meanwhile (retried by another call)
            raise JobNotRetryable((await self._live_job(job.id)).status.value)
        self._on_submit()
        return await self._as_answered(retried)

    async def delete_job(self, job_id: str, headers: Mapping[str, str]) -> None:
        """Delete a job, its inputs and outputs; a running job is cancelled first (its call aborted)."""
        job = await self._caller_job(job_id, headers)
        if not job.is_terminal:
            await self._cancel(job)
        await self._store.delete_job(job.id)

    async def _cancel(self, job: Job) -> Job | None:
        return await self._store.cancel_job(job.id, cancelled_error(job, str(uuid.uuid4())), self._clock())

    async def wait_job(self, job_id: str, headers: Mapping[str, str], timeout: float | None) -> Job:
        """The job once terminal, or as it is when `timeout` seconds have passed (None, or more
        than `max_wait_seconds`: that many). Woken by store events, never by polling."""
        cap = self.config.max_wait_seconds
        timeout = cap if timeout is None else min(timeout, cap)
        await self._listen()
        with self.changes.watching(job_id) as changed, JOB_WAITERS.labels("wait").track_inprogress():
            try:
                async with asyncio.timeout(timeout):
                    while True:
                        changed.clear()  # before reading: a change from now on wakes the wait
                        job = await self._watched_job(job_id, headers)
                        if job.is_terminal:
                            return job
                        await changed.wait()
            except TimeoutError:
                return await self.get_job(job_id, headers)

    async def watch_job(self, job_id: str, headers: Mapping[str, str], after: int) -> AsyncIterator[Job]:
        """The job now (if its change number is above `after`), then at each change, ending after
        a terminal state (a stream of a job already terminal sends that state whatever `after`).
        Changes closer together than a read coalesce into the latest state."""
        await self._listen()
        sent = False
        with self.changes.watching(job_id) as changed, JOB_WAITERS.labels("watch").track_inprogress():
            while True:
                changed.clear()
                job = await self._watched_job(job_id, headers)
                if job.change_seq > after or (job.is_terminal and not sent):
                    after, sent = job.change_seq, True
                    yield job
                if job.is_terminal:
                    return
                await changed.wait()

    async def _watched_job(self, job_id: str, headers: Mapping[str, str]) -> Job:
        """get_job for a waiter or watcher: the store read (and queue position) shared with the
        others on the same job (JobChanges.read), the caller's right to it checked on its own."""
        caller = self._keyring.identify(headers)
        job = await self.changes.read(job_id, lambda: self._positioned(job_id))
        if job is None or job.is_expired(self._clock()) or not caller.may_read(job.owner_key_id):
            raise NotFound("job not found")
        return job

    async def _positioned(self, job_id: str) -> Job | None:
        job = await self._store.get_job(job_id)
        return None if job is None else await self._as_answered(job)

    async def list_jobs(self, query: ListQuery, headers: Mapping[str, str]) -> Page:
        """The caller's own jobs, newest first (an admin's: every job); a keyless caller lists
        nothing (Unauthenticated)."""
        caller = self._keyring.identify(headers)
        if caller.key is None and not caller.admin:
            raise Unauthenticated("listing jobs needs a virtual key: keyless jobs are readable by id only")
        owner = None if caller.admin else caller.key_id
        found = await self._store.list_jobs(replace(query, owner_key_id=owner))
        now = self._clock()
        jobs = [replace(j, result=None) for j in found[: query.page_size] if not j.is_expired(now)]
        more = len(found) > query.page_size
        return Page(jobs, encode_token(found[query.page_size - 1]) if more else "")

    async def _caller_job(self, job_id: str, headers: Mapping[str, str]) -> Job:
        return await self._readable_job(job_id, self._keyring.identify(headers))

    async def open_output(
        self, job_id: str, index: int, headers: Mapping[str, str], token: str
    ) -> OutputStream:
        if token:
            if not self.capabilities.verify(job_id, index, token):
                raise PermissionDenied("invalid image token", "token")
            job = await self._live_job(job_id)
        else:
            job = await self._readable_job(job_id, self._keyring.identify(headers))
        info = job.result.stored_output(index) if job.result is not None else None
        if info is None:
            raise NotFound(f"job {job_id} has no stored image {index}")
        return OutputStream(info, self._store.read_output(job.id, index))

    async def _live_job(self, job_id: str) -> Job:
        job = await self._store.get_job(job_id)
        if job is None or job.is_expired(self._clock()):
            raise NotFound("job not found")
        return job

    async def _readable_job(self, job_id: str, caller: Caller) -> Job:
        """The job, if this caller may read it; otherwise exactly as if it did not exist."""
        job = await self._live_job(job_id)
        if not caller.may_read(job.owner_key_id):
            raise NotFound("job not found")
        return job

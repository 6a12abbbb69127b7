"""The dispatcher: claims jobs under renewable leases and runs them, bounded.

Jobs are claimed in batches of up to CLAIM_BATCH. Every third of the lease time one
statement renews the leases of every job this dispatcher runs (JobStore.renew_leases):
no task and no write per job, so thousands of jobs can wait on providers at once. A job
whose lease the renewal finds gone (another replica's reaper took it back) has its run
cancelled, and only that one: it writes nothing. Outcomes are compare-and-set writes on
the lease holder, so a late worker can never overwrite a result.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import tempfile
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from grpc_server.config import ServerConfig
from grpc_server.dispatch.chain import ChainFailed, ChainSuccess, run_chain
from grpc_server.dispatch.outcome import deadline_error, job_error
from grpc_server.domain.jobs import Job, JobError, JobResult, OutputBlob
from grpc_server.operations.base import Operation, RunInputs
from grpc_server.operations.registry import OPERATIONS
from grpc_server.providers.base import ImageInput, Provider
from grpc_server.providers.registry import ProviderRegistry
from grpc_server.staging import JOB_PREFIX
from grpc_server.store.base import JobStore, StagedFile, StoreEvent, StoreUnavailable
from grpc_server.telemetry import job_run

log = logging.getLogger("asyncgate.dispatcher")
T = TypeVar("T")


LOCAL_FAULTS = (StoreUnavailable, OSError)
"""Faults of this server's own disk or store while a job runs (a provider's failures arrive as
ProviderError, transport failures are classified by the chain)."""
LOCAL_FAULT_PAUSE_SECONDS = 2.0
"""After a local fault, how long this dispatcher waits before claiming again."""
OUTCOME_RETRY_FIRST_DELAY = 0.5
OUTCOME_RETRY_MAX_DELAY = 10.0
CLAIM_BATCH = 500
"""Most jobs one claim statement takes: large enough that a burst is claimed in few
statements, small enough that the first jobs start while the rest are claimed."""


def _describe(fault: BaseException) -> str:
    """A local fault for the log: its class and errno, not its text (which may name paths)."""
    errno = getattr(fault, "errno", None)
    return f"{type(fault).__name__}{f' errno {errno}' if errno else ''}"


def _inputs(staged: list[StagedFile]) -> RunInputs:
    def as_input(s: StagedFile) -> ImageInput:
        return ImageInput(s.path, s.info.filename, s.info.content_type, s.info.width, s.info.height)

    images = [as_input(s) for s in sorted(staged, key=lambda s: s.info.index) if s.info.role == "image"]
    mask = next((as_input(s) for s in staged if s.info.role == "mask"), None)
    return RunInputs(images, mask)


class Dispatcher:
    def __init__(
        self,
        config: ServerConfig,
        store: JobStore,
        registry: ProviderRegistry,
        clock: Callable[[], datetime],
    ) -> None:
        self._config = config
        self._settings = config.dispatcher
        self._store = store
        self._registry = registry
        self._clock = clock
        self.worker_id = f"worker-{uuid.uuid4()}"
        # Set by a submit, a finished job or stop(): whatever may change what to do next.
        self._attention = asyncio.Event()
        self._stopping = False
        self._running: dict[str, asyncio.Task[None]] = {}
        self._finishing: set[str] = set()
        """Jobs writing their outcome or being handed back: guarded writes, never cancelled."""
        self._lost: set[str] = set()
        """Jobs whose run was cancelled because their lease was lost: not released."""
        self._backlog = False
        """Jobs may be waiting (the last claim took all it asked for, or a submit came since):
        a finished job then wakes the loop to claim; otherwise the next submit does."""
        self._claims_paused_until = 0.0
        self._renewer: asyncio.Task[None] | None = None

    def wake(self) -> None:
        """A job was submitted: claim now rather than at the next safety poll."""
        if self._settings.concurrency > 0:  # an accept-only server has nothing to claim
            self._backlog = True  # the job may wait for a free slot: the next finished job claims
            self._attention.set()

    def on_store_event(self, event: StoreEvent) -> None:
        """Any replica's submit, or a job handed back to the queue: there is work to claim."""
        if event.kind in ("submitted", "requeued"):
            self.wake()
        elif event.kind in ("cancelled", "deleted"):
            self.cancel(event.job_id)

    def cancel(self, job_id: str) -> None:
        """The job was cancelled (on any replica): abort its run here, if it runs here. Cancelling
        the task closes its provider connection; the store already holds `cancelled` and the
        lease is gone, so nothing is written after this (the release finds no lease to give back)."""
        task = self._running.get(job_id)
        if task is not None:
            log.info("job %s: cancelled; aborting its run", job_id)
            task.cancel()

    @property
    def running(self) -> int:
        return len(self._running)

    async def run(self) -> None:
        """Claim and start jobs until stop() is called; leases are renewed until stop() returns."""
        if self._renewer is None:
            self._renewer = asyncio.create_task(self._renew_leases(), name="lease-renewal")
        while not self._stopping:
            self._attention.clear()  # before claiming: a submit from now on is not missed
            wanted = min(self._settings.concurrency - len(self._running), CLAIM_BATCH)
            if wanted > 0:
                claimed = await self._claim(wanted)
                for job in claimed:
                    self._start(job)
                # A full claim, or a submit since the claim began: jobs may be left waiting.
                self._backlog = len(claimed) == wanted or self._attention.is_set()
                if self._backlog and len(self._running) < self._settings.concurrency:
                    continue  # more may be waiting, and there is room for them
            await self._idle()

    async def _claim(self, limit: int) -> list[Job]:
        if asyncio.get_running_loop().time() < self._claims_paused_until:
            return []
        now = self._clock()
        try:
            return await self._store.claim_jobs(self.worker_id, limit, now, self._lease_until(now))
        except StoreUnavailable as exc:
            log.warning("cannot claim jobs: %s", exc)
            return []

    async def _idle(self) -> None:
        """Wait for a submit, a free slot, a stop, or the safety poll."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._settings.poll_interval_seconds):
                await self._attention.wait()

    def _lease_until(self, now: datetime) -> datetime:
        return now + timedelta(seconds=self._settings.lease_seconds)

    def _start(self, job: Job) -> None:
        task = asyncio.create_task(self._run_job(job), name=f"job-{job.id}")
        self._running[job.id] = task

        def done(_: asyncio.Task[None]) -> None:
            self._running.pop(job.id, None)
            self._finishing.discard(job.id)
            self._lost.discard(job.id)
            # A free slot matters only when jobs may be waiting; else a submit wakes the loop.
            if self._backlog:
                self._attention.set()

        task.add_done_callback(done)

    async def _run_job(self, job: Job) -> None:
        try:
            await job_run(job, self._execute(job))  # traced as the submit's trace, when tracing is on
        except asyncio.CancelledError:
            if job.id not in self._lost:  # cancelled by shutdown, not by a lost lease: hand the job back
                await asyncio.shield(self._release(job.id))
            raise
        except Exception:
            log.exception("job %s: unexpected failure; its lease will expire and it will be retried", job.id)

    def _staging_root(self) -> Path:
        root = self._config.staging_dir
        root.mkdir(parents=True, exist_ok=True)
        return root

    async def _execute(self, job: Job) -> None:
        operation = OPERATIONS[job.request_type]
        try:
            async with asyncio.timeout(self._settings.job_deadline_seconds):
                result, outputs, served_by = await self._run_operation(job, operation)
        except ChainFailed as failed:
            await self._write_outcome(job, "failed", job_error(job, failed.error))
            log.info("job %s failed: %s", job.id, failed.error.message)
            return
        except TimeoutError:
            await self._write_outcome(job, "failed", deadline_error(job, self._settings.job_deadline_seconds))
            log.info("job %s failed: its deadline of %gs passed", job.id, self._settings.job_deadline_seconds)
            return
        except LOCAL_FAULTS as fault:
            # Our disk or store failed, not the provider: the job goes back to the queue as if
            # never claimed, and this dispatcher pauses before claiming again.
            log.warning("job %s: handed back to the queue after a local fault (%s)", job.id, _describe(fault))
            self._pause_claims()
            await self._hand_back(job.id)
            return
        await self._write_outcome(job, "completed", (result, outputs))
        log.info("job %s completed by %s", job.id, served_by)

    async def _run_operation(
        self, job: Job, operation: Operation[Any, Any]
    ) -> tuple[JobResult, list[OutputBlob], str]:
        """Run the job's operation through its provider chain; raises ChainFailed."""
        if not operation.file_roles:
            served = await self._chain(
                job, lambda p, model: operation.call(p, model, job.params, RunInputs())
            )
        else:
            # The inputs go to local files for the providers to stream, only while the job runs.
            with tempfile.TemporaryDirectory(
                prefix=f"{JOB_PREFIX}{job.id}-", dir=self._staging_root()
            ) as work_dir:
                inputs = _inputs(await self._store.export_inputs(job.id, Path(work_dir)))
                served = await self._chain(job, lambda p, model: operation.call(p, model, job.params, inputs))
        result, outputs = operation.keep(job, job.params, served.value, served.model)
        return result, outputs, served.model

    async def _write_outcome(
        self, job: Job, kind: str, outcome: JobError | tuple[JobResult, list[OutputBlob]]
    ) -> None:
        """Write a terminal outcome, retrying while the store cannot take it (down or full):
        an answer a provider was paid for is not thrown away for a passing local fault. The
        lease is renewed meanwhile; the write is guarded by it, so the run is not cancelled."""
        self._finishing.add(job.id)
        delay = OUTCOME_RETRY_FIRST_DELAY
        while True:
            try:
                if isinstance(outcome, JobError):
                    written = await self._store.fail_job(job.id, self.worker_id, outcome, self._clock())
                else:
                    result, outputs = outcome
                    written = await self._store.complete_job(
                        job.id, self.worker_id, result, outputs, self._clock()
                    )
            except StoreUnavailable as exc:
                log.warning("job %s: cannot write its outcome yet (%s); retrying in %gs", job.id, exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, OUTCOME_RETRY_MAX_DELAY)
                continue
            if not written:
                log.warning("job %s: %s outcome not written: the lease was lost", job.id, kind)
            return

    def _pause_claims(self) -> None:
        self._claims_paused_until = asyncio.get_running_loop().time() + LOCAL_FAULT_PAUSE_SECONDS

    async def _chain(self, job: Job, call: Callable[[Provider, str], Awaitable[T]]) -> ChainSuccess[T]:
        """The chain of models that can run this operation; the others are skipped."""
        capable = [m for m in job.params.models() if self._registry.supports(m, job.request_type)]
        return await run_chain(
            capable or job.params.models(),  # none capable (config changed since submit): fail clearly
            call,
            registry=self._registry,
            retry=self._config.retry,
            provider_timeouts={n: s.timeout_seconds for n, s in self._config.providers.items()},
        )

    async def _renew_leases(self) -> None:
        """Every third of the lease time, one statement renews the lease of every running job;
        a job whose lease is gone has its run cancelled (unless it is already writing its outcome,
        a write the lease guards)."""
        interval = self._settings.lease_seconds / 3
        while True:
            await asyncio.sleep(interval)
            held_before = list(self._running)  # claimed (committed) before the renewal is sent
            if not held_before:
                continue
            try:
                renewed = await self._store.renew_leases(
                    self.worker_id, held_before, self._lease_until(self._clock())
                )
            except StoreUnavailable:
                continue  # the leases may still be ours; try again next time
            except Exception:  # a bug must not end renewal for every job this dispatcher runs
                log.exception("lease renewal failed; trying again in %gs", interval)
                continue
            for job_id in held_before:
                run = self._running.get(job_id)
                if job_id in renewed or run is None or job_id in self._finishing:
                    continue
                log.warning("job %s: lease lost; abandoning this run", job_id)
                self._lost.add(job_id)
                run.cancel()

    async def _release(self, job_id: str) -> None:
        with contextlib.suppress(StoreUnavailable):
            await self._store.release_job(job_id, self.worker_id)

    async def _hand_back(self, job_id: str) -> None:
        """Back to the queue after a local fault, the claim's attempt given back. While the store
        cannot take even that, keep trying (the lease is still renewed) until it does."""
        self._finishing.add(job_id)
        delay = OUTCOME_RETRY_FIRST_DELAY
        while True:
            try:
                await self._store.requeue_job(job_id, self.worker_id, refund_attempt=True)
                return
            except StoreUnavailable as exc:
                log.warning("job %s: cannot hand it back yet (%s); retrying in %gs", job_id, exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, OUTCOME_RETRY_MAX_DELAY)

    async def stop(self, grace_seconds: float) -> None:
        """Stop claiming; let running jobs finish for `grace_seconds`, then release them."""
        self._stopping = True
        self._attention.set()
        tasks = list(self._running.values())
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=grace_seconds)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        if self._renewer is not None:
            self._renewer.cancel()
            await asyncio.gather(self._renewer, return_exceptions=True)

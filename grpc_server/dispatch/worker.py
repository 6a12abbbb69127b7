"""The dispatcher: claims jobs under renewable leases and runs them, bounded.

Each running job has a heartbeat that renews its lease every third of the lease
time; if a renewal finds the lease gone (another replica's reaper took it back),
the run is cancelled and writes nothing. Outcomes are compare-and-set writes on
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
        self._claims_paused_until = 0.0

    def wake(self) -> None:
        """A job was submitted: claim now rather than at the next safety poll."""
        if self._settings.concurrency > 0:  # an accept-only server has nothing to claim
            self._attention.set()

    def on_store_event(self, event: StoreEvent) -> None:
        """Any replica's submit, or a job handed back to the queue: there is work to claim."""
        if event.kind in ("submitted", "requeued"):
            self.wake()

    @property
    def running(self) -> int:
        return len(self._running)

    async def run(self) -> None:
        """Claim and start jobs until stop() is called."""
        while not self._stopping:
            self._attention.clear()  # before claiming: a submit from now on is not missed
            free = self._settings.concurrency - len(self._running)
            claimed = await self._claim(free) if free > 0 else []
            for job in claimed:
                self._start(job)
            if len(claimed) == free and free > 0:
                continue  # there may be more waiting
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
            self._attention.set()

        task.add_done_callback(done)

    async def _run_job(self, job: Job) -> None:
        run = asyncio.current_task()
        assert run is not None
        heartbeat = asyncio.create_task(self._heartbeat(job.id, run))
        try:
            await job_run(job, self._execute(job))  # traced as the submit's trace, when tracing is on
        except asyncio.CancelledError:
            if not heartbeat.done():  # cancelled by shutdown, not by a lost lease: hand the job back
                await asyncio.shield(self._release(job.id))
            raise
        except Exception:
            log.exception("job %s: unexpected failure; its lease will expire and it will be retried", job.id)
        finally:
            heartbeat.cancel()

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
        an answer a provider was paid for is not thrown away for a passing local fault."""
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

    async def _heartbeat(self, job_id: str, run: asyncio.Task[None]) -> None:
        interval = self._settings.lease_seconds / 3
        while True:
            await asyncio.sleep(interval)
            try:
                held = await self._store.renew_lease(job_id, self.worker_id, self._lease_until(self._clock()))
            except StoreUnavailable:
                continue  # the lease may still be ours; try again next beat
            if not held:
                log.warning("job %s: lease lost; abandoning this run", job_id)
                run.cancel()
                return

    async def _release(self, job_id: str) -> None:
        with contextlib.suppress(StoreUnavailable):
            await self._store.release_job(job_id, self.worker_id)

    async def _hand_back(self, job_id: str) -> None:
        """Back to the queue after a local fault, the claim's attempt given back. While the store
        cannot take even that, keep trying (the heartbeat keeps the lease) until it does."""
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

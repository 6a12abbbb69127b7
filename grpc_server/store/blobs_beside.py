"""A job store's files in a blob store beside it: the keys, and the order of writes.

Every blob is written before the row that references it commits (inputs before the job's
INSERT, outputs before the UPDATE that completes it), so a committed row never points at a
missing blob. What goes wrong in between leaves blobs no row references: a create refused
or failed after its puts, a worker whose lease was lost, a crash. They are deleted at once
where the store can (the create's failure, the completion's lost lease, a delete), and
otherwise found later by collect_orphans, which lists the blob store and deletes blobs
older than a grace period whose job is gone or whose outputs token is not the row's.

Keys (grpc_server.blobs.base): `<job id>/in/<role>-<index>` for inputs,
`<job id>/out-<token>/<index>` for outputs, a fresh token per completion.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Sequence
from datetime import datetime, timedelta
from pathlib import Path

from grpc_server.blobs.base import BlobNotFound, BlobStore
from grpc_server.blobs.directory import DirectoryBlobStore
from grpc_server.domain.jobs import InputFile, Job, OutputBlob
from grpc_server.store.base import StagedFile, StoreUnavailable

log = logging.getLogger("asyncgate.store.blobs")

ORPHAN_GRACE = timedelta(hours=1)
"""A blob no row references is collected only once this old: a create writes its blobs before
its row commits, and must not lose them to a collector running in between."""
INLINE_BYTES = 1024 * 1024
"""A new job's files written on the SQLite writer (inline_puts) when they come to this at most."""
SMALL_OUTPUTS_BYTES = 64 * 1024
"""A completion's outputs stay in the job database, written with the row that completes the
job, when they come to this at most in all (an embedding's vectors: a few KB) and the blob
store hands out no URLs: a file or an object per job that small costs more than the row's
write it would spare (about 1 ms of server CPU per job in a directory, measured with 5,000
embedding jobs in flight; an S3 PUT per job in a bucket)."""
_FORGET_AT_ONCE = 16
"""Jobs whose blobs are deleted concurrently (expired jobs go in batches of hundreds)."""
_KEY = re.compile(r"(?P<job>[^/]+)/(?:in/[^/]+|out-(?P<token>[^/]+)/\d+)")

OutputTokens = Callable[[Sequence[str]], Awaitable[dict[str, str | None]]]
"""For job ids, the outputs token of each that still exists (missing ids: gone)."""


def input_key(job_id: str, info: InputFile) -> str:
    return f"{job_id}/in/{info.role}-{info.index}"


def output_key(job_id: str, token: str, index: int) -> str:
    return f"{job_id}/out-{token}/{index}"


def beside_of(beside: BlobsBeside | None, name: str | None) -> BlobsBeside:
    """The blob store holding a row's files (`name`, as the row records it; None: any, for outputs);
    StoreUnavailable when this server is not configured with it."""
    if beside is None or (name is not None and beside.name != name):
        raise StoreUnavailable(
            f"a job's files are in a {name or 'blob'} store this server is not configured with"
            " (the [blobs] store setting)"
        )
    return beside


class BlobsBeside:
    """The blob store a job store keeps new jobs' files in (its name recorded in each row)."""

    def __init__(self, blobs: BlobStore) -> None:
        self.store = blobs
        self.name = blobs.name

    async def put_inputs(self, job_id: str, files: Sequence[StagedFile]) -> None:
        """Write a new job's files, before its row; on failure, none is left behind."""
        try:
            for staged in files:
                await self.store.put(input_key(job_id, staged.info), staged.source)
        except BaseException:
            await self.forget(job_id)
            raise

    def inline_puts(self, job_id: str, files: Sequence[StagedFile]) -> Callable[[], None] | None:
        """A function that writes a new job's files on the thread that calls it, when that is
        cheap: a directory that does not sync, every file in memory and INLINE_BYTES at most in
        all. The SQLite writer calls it before the INSERT that names them, so a submit hands its
        job to one thread instead of two (each hand-off costs the event loop a wake-up). None:
        use put_inputs."""
        store = self.store
        if not isinstance(store, DirectoryBlobStore) or store.fsync:
            return None  # syncs in series on the writer would hold every commit behind them
        in_memory = all(isinstance(f.source, bytes) for f in files)
        if not in_memory or sum(f.info.size_bytes for f in files) > INLINE_BYTES:
            return None

        def put_all() -> None:
            for staged in files:
                assert isinstance(staged.source, bytes)
                store.put_now(input_key(job_id, staged.info), staged.source)

        return put_all

    def takes_outputs(self, outputs: Sequence[OutputBlob]) -> bool:
        """Whether a completion's outputs go to the blob store (else to the job database)."""
        return self.store.presigns or sum(len(output.data) for output in outputs) > SMALL_OUTPUTS_BYTES

    async def complete_with(
        self, job_id: str, outputs: Sequence[OutputBlob], commit: Callable[[str], Awaitable[bool]]
    ) -> bool:
        """Write the outputs under a fresh token, then `commit(token)` (the row naming it); the
        outputs are deleted again when the commit wrote nothing (a lost lease) or rolled back, and
        kept when it was cancelled while it may still commit."""
        token = await self.put_outputs(job_id, outputs)
        committed: bool | None = None
        try:
            committed = await commit(token)
        except Exception:
            committed = False  # rolled back
            raise
        finally:
            if committed is False:
                await self.forget_outputs(job_id, token)  # no row references them
        return committed

    async def put_outputs(self, job_id: str, outputs: Sequence[OutputBlob]) -> str:
        """Write a completion's outputs under a fresh token, before the row; the token."""
        token = secrets.token_hex(8)
        try:
            for index, output in enumerate(outputs):
                await self.store.put(output_key(job_id, token, index), output.data)
        except BaseException:
            await self.forget_outputs(job_id, token)
            raise
        return token

    async def read_output(self, job_id: str, token: str, index: int) -> AsyncIterator[bytes]:
        """The output's bytes in chunks; nothing when it is gone (the job deleted meanwhile)."""
        try:
            async for chunk in self.store.read(output_key(job_id, token, index)):
                yield chunk
        except BlobNotFound:
            return

    async def output_url(self, job: Job, index: int, expires_in: timedelta) -> str | None:
        if job.outputs_token is None:
            return None
        return await self.store.presign(output_key(job.id, job.outputs_token, index), expires_in)

    async def export_inputs(self, job: Job, dest: Path) -> list[StagedFile]:
        staged = []
        for info in job.inputs:
            path = dest / f"{info.role}-{info.index}"
            try:
                await self.store.export(input_key(job.id, info), path)
            except BlobNotFound:
                raise StoreUnavailable(
                    f"job {job.id}: its {info.role} {info.index} is missing from the blob store"
                ) from None
            staged.append(StagedFile(info, path))
        return staged

    async def forget(self, job_id: str) -> None:
        """Delete every blob of a job whose row is gone (or was never written). Best effort: what
        cannot be deleted now is an orphan for collect_orphans."""
        await self._delete_prefix(f"{job_id}/")

    async def forget_outputs(self, job_id: str, token: str) -> None:
        await self._delete_prefix(f"{job_id}/out-{token}/")

    async def forget_all(self, job_ids: Collection[str]) -> None:
        ids = list(job_ids)
        for start in range(0, len(ids), _FORGET_AT_ONCE):
            await asyncio.gather(*(self.forget(job_id) for job_id in ids[start : start + _FORGET_AT_ONCE]))

    async def _delete_prefix(self, prefix: str) -> None:
        try:
            await self.store.delete_prefix(prefix)
        except (StoreUnavailable, OSError) as exc:
            log.warning("blobs under %s left for the orphan sweep: %s", prefix, exc)

    async def collect_orphans(
        self, tokens_of: OutputTokens, now: datetime, grace: timedelta = ORPHAN_GRACE
    ) -> int:
        """Delete the blobs older than `grace` that no row references; how many. Lists the whole
        store, so it runs seldom (the sweeper's orphan interval)."""
        candidates: dict[str, list[tuple[str, str | None]]] = {}
        async for info in self.store.list():
            match = _KEY.fullmatch(info.key)
            if match is None or now - info.modified < grace:
                continue  # not ours, or maybe a create or completion still on its way
            candidates.setdefault(match["job"], []).append((info.key, match["token"]))
        orphans: list[str] = []
        ids = list(candidates)
        for start in range(0, len(ids), 500):
            batch = ids[start : start + 500]
            live = await tokens_of(batch)
            for job_id in batch:
                if job_id not in live:
                    orphans += [key for key, _ in candidates[job_id]]
                else:
                    current = live[job_id]
                    orphans += [
                        key for key, token in candidates[job_id] if token is not None and token != current
                    ]
        if orphans:
            await self.store.delete(orphans)
            log.info("orphan sweep: %d blobs no job references deleted", len(orphans))
        return len(orphans)

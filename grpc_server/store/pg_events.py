"""Store events across replicas: PostgreSQL LISTEN/NOTIFY.

Every write that submits a job, requeues it or ends it also runs
`pg_notify(channel, '<kind>:<job_id>')` in its own statement, hence its own transaction:
PostgreSQL delivers the notification when that transaction commits and drops it if it
rolls back. The channel is `asyncgate_events`, or `asyncgate_events_<schema>` for a store
on its own schema (channels are database-wide; schemas are not). A subscribed store holds
one dedicated connection (outside the pool, which would recycle it) that LISTENs on the
channel; see Listener for how it survives losing that connection.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging

import asyncpg

from grpc_server.store.base import EVENT_KINDS, EventCallback, StoreEvent
from grpc_server.store.pg_connect import (
    CLOSE_TIMEOUT_SECONDS,
    CONNECT_TIMEOUT_SECONDS,
    CONNECTION_ERRORS,
    session_settings,
)

log = logging.getLogger("asyncgate.store")

LISTEN_ERRORS: tuple[type[Exception], ...] = (*CONNECTION_ERRORS, asyncpg.PostgresError)
"""What may go wrong with the listener's connection: all of it retried, none of it fatal."""
RECONNECT_MIN_SECONDS = 0.5
RECONNECT_MAX_SECONDS = 10.0
LISTEN_HEARTBEAT_SECONDS = 30.0
"""How often an idle listener checks its connection: a silent network cut shows only when we speak."""

EVENT_CHANNEL = "asyncgate_events"
_MAX_CHANNEL_BYTES = 63  # NAMEDATALEN - 1: LISTEN would truncate a longer name, pg_notify reject it


def event_channel(schema: str | None) -> str:
    """The NOTIFY channel of a store: one per schema, as channels span the whole database."""
    if schema is None:
        return EVENT_CHANNEL
    channel = f"{EVENT_CHANNEL}_{schema}"
    if len(channel.encode()) > _MAX_CHANNEL_BYTES:
        channel = f"{EVENT_CHANNEL}_{hashlib.sha256(schema.encode()).hexdigest()[:32]}"
    return channel


def parse_event(payload: str) -> StoreEvent | None:
    """'<kind>:<job_id>' as published by the stores; None for anything else (a newer replica's kind)."""
    kind, sep, job_id = payload.partition(":")
    if not sep or kind not in EVENT_KINDS:
        return None
    return StoreEvent(kind, job_id)  # type: ignore[arg-type]  # checked against EVENT_KINDS


class Listener:
    """One dedicated connection LISTENing on a store's channel, for as long as the store is open.

    When that connection is lost (server restart, network cut, terminated backend) a background
    task reconnects with backoff, logging once per outage. Notifications sent meanwhile are
    lost (PostgreSQL queues them only for sessions listening when they commit), so every
    reconnection is followed by StoreEvent("submitted", ""): subscribers re-check the queue.
    A connection that dies silently (no FIN) is found by a heartbeat query.
    """

    def __init__(self, dsn: str, schema: str | None, channel: str, deliver: EventCallback) -> None:
        self._dsn = dsn
        self._schema = schema
        self._channel = channel
        self._deliver = deliver
        self._conn: asyncpg.Connection[asyncpg.Record] | None = None
        self._lost = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._last_error: BaseException | None = None

    @property
    def pid(self) -> int | None:
        conn = self._conn
        return None if conn is None or conn.is_closed() else conn.get_server_pid()

    async def start(self) -> None:
        """Connect once (so that on return, if the database is up, no commit goes unheard); then
        watch and reconnect in the background."""
        connected = await self._connect()
        if not connected:
            log.warning(
                "cannot listen for store events (%s); retrying, the safety poll covers meanwhile",
                self._last_error,
            )
        self._task = asyncio.create_task(self._guarded_run(deaf=not connected), name="asyncgate-store-events")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        await self._disconnect()

    async def _connect(self) -> bool:
        """Open a connection and LISTEN on it; False (the error kept for the log) if that fails."""
        lost = asyncio.Event()
        try:
            conn = await asyncpg.connect(
                self._dsn, timeout=CONNECT_TIMEOUT_SECONDS, server_settings=session_settings(self._schema)
            )
        except LISTEN_ERRORS as exc:
            self._last_error = exc
            return False
        conn.add_termination_listener(lambda _conn: lost.set())
        try:
            await conn.add_listener(self._channel, self._on_notification)
        except BaseException as exc:  # cancelled by stop() included: never leak the connection
            conn.terminate()
            if not isinstance(exc, LISTEN_ERRORS):
                raise
            self._last_error = exc
            return False
        self._conn, self._lost = conn, lost
        return True

    async def _disconnect(self, *, graceful: bool = True) -> None:
        conn, self._conn = self._conn, None
        if conn is None or conn.is_closed():
            return
        if not graceful:  # a connection that stopped answering would only make close() wait
            conn.terminate()
            return
        try:
            await conn.close(timeout=CLOSE_TIMEOUT_SECONDS)
        except LISTEN_ERRORS:
            conn.terminate()

    async def _guarded_run(self, deaf: bool) -> None:
        try:
            await self._run(deaf)
        except Exception:  # a bug: say so, the safety poll still covers
            log.exception("stopped listening for store events")

    async def _run(self, deaf: bool) -> None:
        """`deaf`: not listening now, an outage already logged."""
        delay = RECONNECT_MIN_SECONDS
        while True:
            if deaf:
                await asyncio.sleep(delay)
                delay = min(delay * 2, RECONNECT_MAX_SECONDS)
                if not await self._connect():
                    continue
                log.info("listening for store events again")
                deaf = False
                delay = RECONNECT_MIN_SECONDS
                self._deliver(StoreEvent("submitted", ""))  # work may have arrived while deaf
            await self._until_lost()
            await self._disconnect(graceful=False)
            log.warning(
                "lost the store event connection (%s); reconnecting, the safety poll covers meanwhile",
                self._last_error,
            )
            deaf = True

    async def _until_lost(self) -> None:
        conn = self._conn
        assert conn is not None
        while True:
            try:
                async with asyncio.timeout(LISTEN_HEARTBEAT_SECONDS):
                    await self._lost.wait()
                self._last_error = ConnectionError("the connection was closed")
                return
            except TimeoutError:
                pass
            try:
                async with asyncio.timeout(CONNECT_TIMEOUT_SECONDS):
                    await conn.fetchval("SELECT 1")
            except TimeoutError:
                self._last_error = TimeoutError("no answer to a heartbeat")
                return
            except LISTEN_ERRORS as exc:
                self._last_error = exc
                return

    def _on_notification(self, _conn: object, _pid: int, _channel: str, payload: object) -> None:
        event = parse_event(payload) if isinstance(payload, str) else None
        if event is None:
            log.debug("ignoring store event %r", payload)
            return
        self._deliver(event)

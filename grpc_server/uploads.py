"""Reading a client-streamed upload: bounded in time and in bytes held by the process.

- An upload stream that sends nothing for `upload_idle_timeout_seconds` is ended
  (IdleTimeout): a client with no deadline can no longer hold its buffers forever.
- Bytes received by uploads still in progress are counted against one per-process bound
  (`max_staged_upload_bytes`); an upload that would pass it is refused (Busy) and frees
  what it held at once, so a crowd of slow uploads cannot exhaust memory or disk.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Generic, TypeVar

from grpc_server.domain.errors import Busy, IdleTimeout
from grpc_server.errors import refuse_malformed

M = TypeVar("M")


class UploadBudget:
    """Bytes held by the uploads in progress in this process."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0

    def take(self, n: int, param: str) -> None:
        if self.used + n > self.limit:
            raise Busy(
                f"the server is receiving {self.used} bytes of other uploads (at most {self.limit});"
                " try again shortly",
                param,
            )
        self.used += n

    def give_back(self, n: int) -> None:
        self.used -= n


class UploadReader(Generic[M]):
    """The messages of one upload, each awaited within the idle timeout, their bytes counted."""

    def __init__(self, messages: AsyncIterator[M], budget: UploadBudget, idle_timeout: float) -> None:
        self._messages = messages
        self._budget = budget
        self._idle_timeout = idle_timeout
        self.held = 0

    async def next(self) -> M | None:
        try:
            async with asyncio.timeout(self._idle_timeout):
                message = await anext(self._messages)
            refuse_malformed(message)
            return message
        except StopAsyncIteration:
            return None
        except TimeoutError:
            raise IdleTimeout(
                f"the upload sent nothing for {self._idle_timeout:g} s and was ended", "image"
            ) from None

    def hold(self, n: int, param: str) -> None:
        self._budget.take(n, param)
        self.held += n

    def release(self) -> None:
        self._budget.give_back(self.held)
        self.held = 0

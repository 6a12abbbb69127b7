"""Rendered answers of ended jobs, reused: an ended job does not change, so a poll of it need not
read its outputs from the server and render them again.

A poll still asks the server for the job every time (GetJob): that is what decides whether the
caller may see it, and whether it still exists (not expired, not deleted). Only what follows is
reused: reading stored outputs (an embedding's vectors, b64_json images), building the envelope
and encoding it. The key holds the job's change number (a retried job is a new state) and the
origin its URLs were built for. Bounded in bytes, least recently used out first; an answer
larger than a tenth of the bound is not kept.
"""

from __future__ import annotations

from collections import OrderedDict

RenderKey = tuple[str, int, bool, str]
"""(job id, change number, with asyncgate's own keys, origin of result URLs)."""

DEFAULT_MAX_BYTES = 64 * 1024 * 1024


class RenderCache:
    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.max_bytes = max_bytes
        self.held_bytes = 0
        self._answers: OrderedDict[RenderKey, bytes] = OrderedDict()

    def get(self, key: RenderKey) -> bytes | None:
        answer = self._answers.get(key)
        if answer is not None:
            self._answers.move_to_end(key)
        return answer

    def put(self, key: RenderKey, answer: bytes) -> None:
        if len(answer) > self.max_bytes // 10 or key in self._answers:
            return
        self._answers[key] = answer
        self.held_bytes += len(answer)
        while self.held_bytes > self.max_bytes:
            _, dropped = self._answers.popitem(last=False)
            self.held_bytes -= len(dropped)

    def __len__(self) -> int:
        return len(self._answers)

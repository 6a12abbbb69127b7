"""What the provider tests share: the calls they make, their input files, the fakes' request logs.

A call's params name the model as `provider/model`, as a client would; the call itself
carries the provider's own model name.
"""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from pathlib import Path
from typing import Any, Protocol, TypeVar

import pytest
from PIL import Image

from grpc_server.domain.jobs import EmbeddingParams, ImageEditParams, ImageGenerationParams
from grpc_server.providers.base import (
    EmbeddingCall,
    ImageEditCall,
    ImageGenerationCall,
    ImageInput,
    ProviderError,
)

RecordedT_co = TypeVar("RecordedT_co", covariant=True)


class Recorder(Protocol[RecordedT_co]):
    """A fake provider server: the requests it received, in order."""

    @property
    def requests(self) -> Sequence[RecordedT_co]: ...


def only_request(fake: Recorder[RecordedT_co]) -> RecordedT_co:
    """The request the fake received, asserted to be its only one."""
    assert len(fake.requests) == 1
    return fake.requests[0]


async def provider_error(call: Awaitable[object]) -> ProviderError:
    """The ProviderError that awaiting `call` raises (the test fails if it raises none)."""
    with pytest.raises(ProviderError) as caught:
        await call
    return caught.value


def image_file(
    tmp_path: Path,
    filename: str,
    size: tuple[int, int] = (32, 24),
    fmt: str = "PNG",
    content_type: str = "image/png",
    colour: tuple[int, ...] = (200, 30, 30),
) -> ImageInput:
    """An input image written to tmp_path/filename: one colour, RGBA as PNG, else RGB."""
    path = tmp_path / filename
    Image.new("RGBA" if fmt == "PNG" else "RGB", size, colour).save(path, fmt)
    return ImageInput(path, filename, content_type, size[0], size[1])


def generation_call(provider: str, model: str, prompt: str, **params: Any) -> ImageGenerationCall:
    full = ImageGenerationParams(model=f"{provider}/{model}", prompt=prompt, **params)
    return ImageGenerationCall(model=model, params=full)


def edit_call(
    provider: str,
    model: str,
    images: list[ImageInput],
    mask: ImageInput | None = None,
    prompt: str = "make it blue",
    **params: Any,
) -> ImageEditCall:
    full = ImageEditParams(model=f"{provider}/{model}", prompt=prompt, **params)
    return ImageEditCall(model=model, params=full, images=images, mask=mask)


def embedding_call(provider: str, model: str, **params: Any) -> EmbeddingCall:
    """`params` include the input."""
    return EmbeddingCall(model=model, params=EmbeddingParams(model=f"{provider}/{model}", **params))

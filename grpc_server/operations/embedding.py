"""Embeddings: one vector per input text (or token-id list), kept as one float32 blob."""

from __future__ import annotations

import math
import struct
from typing import cast

from asyncgate.v1 import embedding_pb2 as emb_pb
from asyncgate.v1 import job_pb2 as job_pb
from grpc_server.config import ServerConfig
from grpc_server.domain import validation as rules
from grpc_server.domain.errors import InvalidArgument, PayloadTooLarge
from grpc_server.domain.jobs import (
    VECTORS_CONTENT_TYPE,
    EmbeddingInput,
    EmbeddingParams,
    EmbeddingResult,
    Job,
    OutputBlob,
    RequestType,
    served_extra_fields,
)
from grpc_server.operations.base import Operation, RunInputs, SubmitShape
from grpc_server.operations.proto_fields import (
    enum_to_str,
    optional,
    strip_models,
    struct_params,
)
from grpc_server.providers.base import EmbeddingCall, EmbeddingOutcome, Provider, ProviderError


def validate_embedding(
    params: EmbeddingParams, *, max_fallbacks: int, max_tokens: int, max_chars: int
) -> None:
    """Refuse the first rule an embeddings request breaks."""
    rules.check_model("model", params.model, required=True)
    items = params.inputs()
    if not items:
        raise InvalidArgument("input is required and must not be empty", "input")
    if len(items) > rules.MAX_EMBEDDING_INPUTS:
        raise InvalidArgument(
            f"too many inputs: {len(items)} (at most {rules.MAX_EMBEDDING_INPUTS})", "input"
        )
    tokens = chars = 0
    for index, item in enumerate(items):
        if isinstance(item, str):
            if not item:
                raise InvalidArgument(f"input[{index}] is empty", "input")
            chars += len(item)
        elif not item:
            raise InvalidArgument(f"input[{index}] has no tokens", "input")
        elif min(cast(list[int], item)) < 0:
            raise InvalidArgument(f"input[{index}] has a negative token id", "input")
        else:
            tokens += len(item)
    # Caps on the whole request: one input of millions of token ids is as costly as many.
    if tokens > max_tokens:
        raise PayloadTooLarge(f"input has {tokens} token ids in all (at most {max_tokens})", "input")
    if chars > max_chars:
        raise PayloadTooLarge(f"input has {chars} characters in all (at most {max_chars})", "input")
    rules.check_choice("encoding_format", params.encoding_format, rules.ENCODING_FORMATS)
    rules.check_range("dimensions", params.dimensions, rules.DIMENSIONS_RANGE)
    rules.check_fallbacks(params.fallbacks, max_fallbacks)


def embedding_input(value: emb_pb.EmbeddingInput) -> EmbeddingInput:
    kind = value.WhichOneof("kind")
    if kind == "text":
        return value.text
    if kind == "texts":
        return list(value.texts.values)
    if kind == "tokens":
        return list(value.tokens.values)
    if kind == "token_lists":
        return [list(tokens.values) for tokens in value.token_lists.values]
    return ""


def embedding_params(request: emb_pb.EmbeddingRequest) -> EmbeddingParams:
    return EmbeddingParams(
        model=request.model.strip(),
        input=embedding_input(request.input),
        encoding_format=enum_to_str(emb_pb.EncodingFormat, request.encoding_format, "encoding_format")
        or "float",
        dimensions=optional(request, "dimensions"),
        user=request.user or None,
        fallbacks=strip_models(request.fallbacks),
        extra_params=struct_params(request.extra_params),
    )


def check_vectors(outcome: EmbeddingOutcome, inputs: int) -> None:
    """One vector per input, all of one non-zero length; otherwise the answer is bad (retryable)."""
    lengths = {len(v) for v in outcome.vectors}
    if len(outcome.vectors) != inputs or len(lengths) != 1 or 0 in lengths:
        raise ProviderError(
            f"provider returned {len(outcome.vectors)} vectors for {inputs} inputs"
            f" (lengths {sorted(lengths)})",
            status_code=502,
            type="invalid_response",
            retryable=True,
        )


def _shorten(vector: list[float], dimensions: int) -> list[float]:
    if len(vector) <= dimensions:
        return vector
    head = vector[:dimensions]
    norm = math.sqrt(sum(x * x for x in head))
    return [x / norm for x in head] if norm else head


def keep_vectors(
    job: Job, params: EmbeddingParams, outcome: EmbeddingOutcome, served_by: str
) -> tuple[EmbeddingResult, list[OutputBlob]]:
    """The neutral result and the vectors as one little-endian float32 blob.

    Vectors longer than the `dimensions` asked for (a provider that ignores it)
    are shortened and L2-normalised again, as OpenAI's own shortening does.
    """
    vectors = [list(v) for v in outcome.vectors]
    if params.dimensions is not None:
        vectors = [_shorten(v, params.dimensions) for v in vectors]
    dimensions = len(vectors[0]) if vectors else 0
    data = struct.pack(f"<{len(vectors) * dimensions}f", *(x for v in vectors for x in v))
    result = EmbeddingResult(
        model=outcome.model,
        count=len(vectors),
        dimensions=dimensions,
        encoding_format=params.encoding_format,
        extra_fields=served_extra_fields(job, served_by),
        prompt_tokens=outcome.prompt_tokens,
        total_tokens=outcome.total_tokens,
    )
    return result, [OutputBlob(data, VECTORS_CONTENT_TYPE)]


class Embedding(Operation[EmbeddingParams, EmbeddingOutcome]):
    request_type = RequestType.EMBEDDING
    proto_request_type = job_pb.REQUEST_TYPE_EMBEDDING

    def params_from_proto(self, request: emb_pb.EmbeddingRequest) -> EmbeddingParams:
        return embedding_params(request)

    def validate(self, params: EmbeddingParams, shape: SubmitShape, config: ServerConfig) -> None:
        validate_embedding(
            params,
            max_fallbacks=config.max_fallbacks,
            max_tokens=config.max_embedding_tokens,
            max_chars=config.max_embedding_chars,
        )

    async def call(
        self, provider: Provider, model: str, params: EmbeddingParams, inputs: RunInputs
    ) -> EmbeddingOutcome:
        outcome = await provider.embed(EmbeddingCall(model, params))
        check_vectors(outcome, len(params.inputs()))  # inside the attempt: a bad answer is retried
        return outcome

    def keep(
        self, job: Job, params: EmbeddingParams, outcome: EmbeddingOutcome, served_by: str
    ) -> tuple[EmbeddingResult, list[OutputBlob]]:
        return keep_vectors(job, params, outcome, served_by)

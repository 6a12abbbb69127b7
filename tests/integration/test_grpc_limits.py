"""Limits and refusals at the gRPC boundary, on a real grpc.aio server: unknown enum numbers,
too many fallbacks, oversized embeddings, idle and crowded uploads, keyless uploads refused
before they are staged, and the one error map (no exception text ever reaches a caller)."""

from __future__ import annotations

import asyncio
import os
from dataclasses import replace
from typing import Any

import grpc
import pytest

from asyncgate.v1 import embedding_pb2 as emb_pb
from asyncgate.v1 import image_edit_pb2 as edit_pb
from asyncgate.v1 import image_generation_pb2 as gen_pb
from asyncgate.v1 import job_pb2 as job_pb
from asyncgate.v1 import job_service_pb2 as pb
from asyncgate.v1 import job_service_pb2_grpc as pb_grpc
from grpc_server.errors import maps_errors
from tests.conftest import KEY_A, Stack, StackFactory
from tests.grpc_details import error_details
from tests.images import subject_on_background

MB = 1024 * 1024
KEY = (("x-bf-vk", KEY_A.value),)


async def refusal(call: Any) -> tuple[grpc.StatusCode, str, str]:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call
    return (raised.value.code(), *error_details(raised.value))


def _generation(**fields: Any) -> pb.CreateImageGenerationJobRequest:
    request = gen_pb.ImageGenerationRequest(model="local/placeholder", prompt="a lighthouse")
    for name, value in fields.items():
        if name == "fallbacks":
            request.fallbacks.extend(value)
        else:
            setattr(request, name, value)
    return pb.CreateImageGenerationJobRequest(request=request)


@pytest.mark.parametrize("field", ["size", "quality", "style", "response_format", "background"])
async def test_an_enum_number_the_server_does_not_know_names_its_field(stack: Stack, field: str) -> None:
    request = _generation()
    setattr(request.request, field, 99)  # open enums: proto3 keeps numbers it does not define
    assert await refusal(stack.stub.CreateImageGenerationJob(request)) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "INVALID_ARGUMENT",
        field,
    )
    assert stack.stored_jobs() == 0


async def test_an_unknown_request_type_on_get_is_invalid(stack: Stack) -> None:
    request = pb.GetJobRequest(id="00000000-0000-4000-8000-000000000000", request_type=42)  # type: ignore[arg-type]
    assert await refusal(stack.stub.GetJob(request)) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "INVALID_ARGUMENT",
        "request_type",
    )


async def test_fallback_chains_are_bounded_at_submit(make_stack: StackFactory) -> None:
    stack = await make_stack(max_fallbacks=2)
    ok = await stack.stub.CreateImageGenerationJob(_generation(fallbacks=["local/a", "local/b"]))
    assert ok.job.status == job_pb.JOB_STATUS_PENDING
    code, reason, field = await refusal(
        stack.stub.CreateImageGenerationJob(_generation(fallbacks=["local/a", "local/b", "local/c"]))
    )
    assert (code, reason, field) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT", "fallbacks")
    assert stack.stored_jobs() == 1


async def test_embedding_inputs_are_capped_in_tokens_and_characters(make_stack: StackFactory) -> None:
    stack = await make_stack(max_embedding_tokens=1000, max_embedding_chars=500)

    def embedding(value: emb_pb.EmbeddingInput) -> pb.CreateEmbeddingJobRequest:
        return pb.CreateEmbeddingJobRequest(
            request=emb_pb.EmbeddingRequest(model="local/hashing", input=value)
        )

    tokens = emb_pb.EmbeddingInput(tokens=emb_pb.TokenList(values=range(1001)))
    texts = emb_pb.EmbeddingInput(texts=emb_pb.TextList(values=["x" * 300, "y" * 201]))
    for too_big in (tokens, texts):
        code, reason, field = await refusal(stack.stub.CreateEmbeddingJob(embedding(too_big)))
        assert (code, reason, field) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "PAYLOAD_TOO_LARGE", "input")
    within = emb_pb.EmbeddingInput(tokens=emb_pb.TokenList(values=range(1000)))
    assert (await stack.stub.CreateEmbeddingJob(embedding(within))).job.id
    assert stack.stored_jobs() == 1


def _image_file() -> pb.UploadImageEditJobRequest:
    return pb.UploadImageEditJobRequest(file=pb.UploadFile(role=pb.UPLOAD_FILE_ROLE_IMAGE, filename="a.png"))


async def test_an_idle_upload_is_ended(make_stack: StackFactory) -> None:
    stack = await make_stack(upload_idle_timeout_seconds=0.3)
    call = stack.stub.UploadImageEditJob(None)
    await call.write(_image_file())
    await call.write(pb.UploadImageEditJobRequest(chunk=subject_on_background()[:100]))
    # ...and nothing more: the server ends the call instead of holding it forever.
    assert await refusal(call) == (grpc.StatusCode.DEADLINE_EXCEEDED, "UPLOAD_IDLE", "image")
    await stack.no_staged_files()


async def test_uploads_in_progress_are_bounded_per_process(make_stack: StackFactory) -> None:
    stack = await make_stack(
        max_staged_upload_bytes=3 * MB, max_image_bytes=3 * MB, upload_idle_timeout_seconds=30
    )
    chunk = os.urandom(256 * 1024)
    first = stack.stub.UploadImageEditJob(None)
    await first.write(_image_file())
    for _ in range(8):  # 2 MB held by an upload still in progress
        await first.write(pb.UploadImageEditJobRequest(chunk=chunk))

    second = stack.stub.UploadImageEditJob(None)
    await second.write(_image_file())
    for _ in range(8):  # another 2 MB: past the 3 MB bound while the first is open
        await second.write(pb.UploadImageEditJobRequest(chunk=chunk))
    await second.done_writing()
    assert await refusal(second) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "UPLOADS_BUSY", "image")

    first.cancel()  # the first upload goes away: what it held is free again
    await stack.no_staged_files()
    image = subject_on_background()
    request = edit_pb.ImageEditRequest(model="local/pillow", type=edit_pb.EDIT_TYPE_BACKGROUND_REMOVAL)

    async def third() -> Any:
        yield _image_file()
        yield pb.UploadImageEditJobRequest(chunk=image)
        yield pb.UploadImageEditJobRequest(header=pb.UploadHeader(request=request))

    created = None
    for _ in range(100):  # the cancelled call's clean-up runs as the server notices it
        try:
            created = await stack.stub.UploadImageEditJob(third())
            break
        except grpc.aio.AioRpcError as error:
            assert error_details(error)[0] == "UPLOADS_BUSY"
            await asyncio.sleep(0.05)
    assert created is not None and created.job.status == job_pb.JOB_STATUS_PENDING


async def test_a_keyless_upload_is_refused_before_anything_is_staged(make_stack: StackFactory) -> None:
    stack = await make_stack(require_virtual_key=True)
    call = stack.stub.UploadImageEditJob(None)
    staged_during_upload: list[int] = []
    await call.write(_image_file())
    for _ in range(12):  # 3 MB: past the 1 MB a file may hold in memory before it is spilled
        await call.write(pb.UploadImageEditJobRequest(chunk=os.urandom(256 * 1024)))
        staged_during_upload.append(len(stack.staged_files()))
    await call.done_writing()
    assert await refusal(call) == (grpc.StatusCode.UNAUTHENTICATED, "VIRTUAL_KEY_REQUIRED", "")
    assert staged_during_upload == [0] * 12
    assert stack.stored_jobs() == 0


@maps_errors
class _Broken(pb_grpc.JobServiceServicer):
    async def GetJob(self, request: pb.GetJobRequest, context: Any) -> pb.GetJobResponse:
        raise RuntimeError("secret detail: /var/lib/asyncgate/keys")

    async def ReadJobOutput(self, request: pb.ReadJobOutputRequest, context: Any) -> Any:
        yield pb.ReadJobOutputResponse(chunk=b"first")
        raise KeyError("another secret")


async def test_an_unexpected_failure_is_internal_with_an_event_id_and_no_exception_text(
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = grpc.aio.server()
    pb_grpc.add_JobServiceServicer_to_server(_Broken(), server)  # type: ignore[abstract]  # two RPCs suffice
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = pb_grpc.JobServiceStub(channel)
            with pytest.raises(grpc.aio.AioRpcError) as unary:
                await stub.GetJob(pb.GetJobRequest(id="x"))
            with pytest.raises(grpc.aio.AioRpcError) as streaming:
                async for _ in stub.ReadJobOutput(pb.ReadJobOutputRequest(job_id="x")):
                    pass
    finally:
        await server.stop(None)
    for raised in (unary.value, streaming.value):
        assert raised.code() == grpc.StatusCode.INTERNAL
        message = raised.details() or ""
        assert message.startswith("internal error (event_id=") and "secret" not in message
        event_id = message.removeprefix("internal error (event_id=").removesuffix(")")
        assert any(event_id in r.getMessage() and r.exc_info for r in caplog.records)


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"\x0a\x02\xff\xfe", "bad UTF-8"),  # GetJobRequest.id: bytes that are not UTF-8
        (b"\x0a\x05abc", "truncated"),  # a length past the end of the message
    ],
)
async def test_a_request_that_does_not_parse_is_invalid_argument(
    stack: Stack, payload: bytes, reason: str
) -> None:
    call = stack.channel.unary_unary("/asyncgate.v1.JobService/GetJob", None, None)  # raw bytes
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call(payload)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT, raised.value.details()
    assert error_details(raised.value)[0] == "INVALID_ARGUMENT"
    assert "asyncgate.v1.GetJobRequest" in (raised.value.details() or "")


async def test_a_malformed_message_inside_an_upload_stream_is_invalid_argument(stack: Stack) -> None:
    call = stack.channel.stream_unary("/asyncgate.v1.JobService/UploadImageEditJob", None, None)

    async def messages() -> Any:
        yield _image_file().SerializeToString()
        yield b"\x1a\x10short"  # a chunk field announcing 16 bytes, holding 5

    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call(messages())
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT, raised.value.details()
    await stack.no_staged_files()


async def test_check_caller_answers_as_a_create_would(make_stack: StackFactory) -> None:
    limited = replace(KEY_A, allowed_models=("local/*",))
    stack = await make_stack(require_virtual_key=True, virtual_keys=(limited,))
    assert await stack.stub.CheckCaller(pb.CheckCallerRequest(), metadata=KEY) == pb.CheckCallerResponse()
    await stack.stub.CheckCaller(pb.CheckCallerRequest(model="local/pillow"), metadata=KEY)
    assert await refusal(stack.stub.CheckCaller(pb.CheckCallerRequest())) == (
        grpc.StatusCode.UNAUTHENTICATED,
        "VIRTUAL_KEY_REQUIRED",
        "",
    )
    assert await refusal(stack.stub.CheckCaller(pb.CheckCallerRequest(model="openai/x"), metadata=KEY)) == (
        grpc.StatusCode.PERMISSION_DENIED,
        "PERMISSION_DENIED",
        "model",
    )
    unknown = (("x-bf-vk", "sk-bf-nobody"),)
    assert (await refusal(stack.stub.CheckCaller(pb.CheckCallerRequest(), metadata=unknown)))[1] == (
        "VIRTUAL_KEY_NOT_FOUND"
    )
    assert stack.stored_jobs() == 0

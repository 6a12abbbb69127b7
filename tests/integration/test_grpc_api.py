"""The gRPC API on a real grpc.aio server: create (unary and streamed), get, read
outputs, errors with google.rpc details, health and reflection."""

from __future__ import annotations

import asyncio
import io
import os

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from PIL import Image

from asyncgate.v1 import image_common_pb2 as common_pb
from asyncgate.v1 import image_edit_pb2 as edit_pb
from asyncgate.v1 import job_pb2 as job_pb
from asyncgate.v1 import job_service_pb2 as pb
from asyncgate.v1 import job_service_pb2_grpc as pb_grpc
from tests.conftest import KEY_A, KEY_B, Stack, StackFactory
from tests.grpc_details import error_details
from tests.images import mask_bytes, png_bytes, subject_on_background

MB = 1024 * 1024
TERMINAL = (job_pb.JOB_STATUS_COMPLETED, job_pb.JOB_STATUS_FAILED)


def _edit(**fields: object) -> edit_pb.ImageEditRequest:
    request = edit_pb.ImageEditRequest(
        model="local/pillow",
        type=edit_pb.EDIT_TYPE_BACKGROUND_REMOVAL,
        images=[
            common_pb.InputImage(data=subject_on_background(), filename="a.png", content_type="image/png")
        ],
    )
    for name, value in fields.items():
        setattr(request, name, value)
    return request


async def _wait(stack: Stack, job_id: str, metadata: tuple[tuple[str, str], ...] = ()) -> job_pb.Job:
    while True:
        response = await stack.stub.GetJob(pb.GetJobRequest(id=job_id), metadata=metadata)
        if response.job.status in TERMINAL:
            return response.job
        await asyncio.sleep(0.05)


async def _read(stack: Stack, request: pb.ReadJobOutputRequest) -> tuple[str, int, bytes, list[int]]:
    content_type, size, data, chunks = "", 0, bytearray(), []
    async for message in stack.stub.ReadJobOutput(request):
        if message.content_type:
            content_type, size = message.content_type, message.size_bytes
        chunks.append(len(message.chunk))
        data += message.chunk
    return content_type, size, bytes(data), chunks


async def test_unary_create_get_and_read_output(stack: Stack) -> None:
    created = await stack.stub.CreateImageEditJob(pb.CreateImageEditJobRequest(request=_edit()))
    assert created.job.status == job_pb.JOB_STATUS_PENDING
    assert created.job.request_type == job_pb.REQUEST_TYPE_IMAGE_EDIT
    job = await _wait(stack, created.job.id)
    assert job.status == job_pb.JOB_STATUS_COMPLETED and job.status_code == 200
    assert job.expire_time.ToDatetime() > job.complete_time.ToDatetime()
    [image] = job.image_result.data
    assert image.WhichOneof("source") == "stored"
    content_type, size, data, _ = await _read(
        stack, pb.ReadJobOutputRequest(job_id=job.id, index=0, access_token=image.stored.access_token)
    )
    assert content_type == "image/png" and size == len(data) == image.stored.size_bytes
    assert Image.open(io.BytesIO(data)).size == (64, 64)


async def test_streamed_upload_with_mask_in_small_chunks(stack: Stack) -> None:
    image, mask = png_bytes(64, 64, (10, 200, 10)), mask_bytes(64, 64)

    async def parts() -> object:
        yield pb.UploadImageEditJobRequest(
            file=pb.UploadFile(role=pb.UPLOAD_FILE_ROLE_IMAGE, filename="a.png", content_type="image/png")
        )
        for i in range(0, len(image), 100):
            yield pb.UploadImageEditJobRequest(chunk=image[i : i + 100])
        yield pb.UploadImageEditJobRequest(
            file=pb.UploadFile(role=pb.UPLOAD_FILE_ROLE_MASK, filename="m.png", content_type="image/png")
        )
        yield pb.UploadImageEditJobRequest(chunk=mask)
        # The header may come last.
        request = edit_pb.ImageEditRequest(
            model="local/pillow", prompt="fill", type=edit_pb.EDIT_TYPE_INPAINTING
        )
        yield pb.UploadImageEditJobRequest(header=pb.UploadHeader(request=request))

    created = await stack.stub.UploadImageEditJob(parts())  # type: ignore[arg-type]
    job = await _wait(stack, created.job.id)
    assert job.status == job_pb.JOB_STATUS_COMPLETED, job.error
    stored = await stack.server.store.get_job(job.id)
    assert stored is not None
    assert [(f.role, f.size_bytes) for f in stored.inputs] == [("image", len(image)), ("mask", len(mask))]


async def test_a_default_limits_client_polls_a_job_with_large_outputs(stack: Stack) -> None:
    # Three outputs of random pixels are ~12 MiB in all, far over the 4 MiB default;
    # the polled Job only references them.
    noise = Image.frombytes("RGB", (1024, 1024), os.urandom(1024 * 1024 * 3))
    buffer = io.BytesIO()
    noise.save(buffer, "PNG", compress_level=1)
    request = _edit(
        n=3, type=edit_pb.EDIT_TYPE_OUTPAINTING, size=common_pb.IMAGE_SIZE_1536X1024, prompt="more"
    )
    del request.images[:]
    request.images.append(
        common_pb.InputImage(data=buffer.getvalue(), filename="n.png", content_type="image/png")
    )
    created = await stack.stub.CreateImageEditJob(pb.CreateImageEditJobRequest(request=request))
    async with grpc.aio.insecure_channel(stack.grpc_target) as default_channel:
        stub = pb_grpc.JobServiceStub(default_channel)
        while True:
            job = (await stub.GetJob(pb.GetJobRequest(id=created.job.id))).job
            if job.status in TERMINAL:
                break
            await asyncio.sleep(0.05)
    assert job.status == job_pb.JOB_STATUS_COMPLETED, job.error
    assert job.ByteSize() < 64 * 1024
    total = sum(image.stored.size_bytes for image in job.image_result.data)
    assert total > 4 * 1024 * 1024
    _, _, data, chunks = await _read(
        stack,
        pb.ReadJobOutputRequest(job_id=job.id, access_token=job.image_result.data[0].stored.access_token),
    )
    assert max(chunks) <= 1024 * 1024 and len(data) == job.image_result.data[0].stored.size_bytes


async def test_validation_error_carries_bad_request_and_error_info(stack: Stack) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stack.stub.CreateImageEditJob(pb.CreateImageEditJobRequest(request=_edit(n=11)))
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_details(raised.value) == ("INVALID_ARGUMENT", "n")
    assert "invalid n value" in (raised.value.details() or "")


async def test_stream_true_is_refused(stack: Stack) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stack.stub.CreateImageEditJob(pb.CreateImageEditJobRequest(request=_edit(stream=True)))
    assert raised.value.details() == "stream is not supported for async image edits"
    assert error_details(raised.value)[1] == "stream"


async def test_unknown_and_other_keys_jobs_are_not_found_alike(stack: Stack) -> None:
    key_a = (("x-bf-vk", KEY_A.value),)
    created = await stack.stub.CreateImageEditJob(
        pb.CreateImageEditJobRequest(request=_edit()), metadata=key_a
    )
    for job_id, metadata in (
        (created.job.id, (("x-bf-vk", KEY_B.value),)),
        (created.job.id, ()),
        ("nope", key_a),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await stack.stub.GetJob(pb.GetJobRequest(id=job_id), metadata=metadata)
        assert raised.value.code() == grpc.StatusCode.NOT_FOUND
        assert error_details(raised.value)[0] == "JOB_NOT_FOUND"
    assert (
        await stack.stub.GetJob(pb.GetJobRequest(id=created.job.id), metadata=key_a)
    ).job.id == created.job.id


async def test_operation_type_mismatch_only_for_a_reader(stack: Stack) -> None:
    key_a = (("x-bf-vk", KEY_A.value),)
    created = await stack.stub.CreateImageEditJob(
        pb.CreateImageEditJobRequest(request=_edit()), metadata=key_a
    )
    as_embedding = pb.GetJobRequest(id=created.job.id, request_type=job_pb.REQUEST_TYPE_EMBEDDING)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stack.stub.GetJob(as_embedding, metadata=key_a)
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND
    assert raised.value.details() == "operation type mismatch"
    assert error_details(raised.value)[0] == "OPERATION_TYPE_MISMATCH"
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stack.stub.GetJob(as_embedding)  # may not read it: simply unknown
    assert error_details(raised.value)[0] == "JOB_NOT_FOUND"


async def test_upload_without_header_and_chunk_before_file(stack: Stack) -> None:
    async def no_header() -> object:
        yield pb.UploadImageEditJobRequest(file=pb.UploadFile(role=pb.UPLOAD_FILE_ROLE_IMAGE, filename="a"))
        yield pb.UploadImageEditJobRequest(chunk=png_bytes())

    async def orphan_chunk() -> object:
        yield pb.UploadImageEditJobRequest(chunk=b"data")

    for parts, field in ((no_header, "header"), (orphan_chunk, "file")):
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await stack.stub.UploadImageEditJob(parts())  # type: ignore[arg-type]
        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert error_details(raised.value)[1] == field
    assert stack.stored_jobs() == 0


async def test_a_file_over_the_limit_is_refused_after_the_clients_last_write(
    make_stack: StackFactory,
) -> None:
    """The server reads the rest of a refused upload before it ends the call, so every write the
    client makes succeeds and the call ends with the refusal (see service._discard_rest): not with
    the INTERNAL that grpc.aio reports when a write meets a call already ended."""
    stack = await make_stack(max_image_bytes=MB)
    chunk = os.urandom(64 * 1024)
    for _ in range(10):  # the race this guards against was seen in about one call in several
        call = stack.stub.UploadImageEditJob(None)  # None: the caller writes the messages
        await call.write(pb.UploadImageEditJobRequest(file=pb.UploadFile(role=pb.UPLOAD_FILE_ROLE_IMAGE)))
        for _ in range(2 * MB // len(chunk)):
            await call.write(pb.UploadImageEditJobRequest(chunk=chunk))
        request = edit_pb.ImageEditRequest(model="local/pillow", type=edit_pb.EDIT_TYPE_BACKGROUND_REMOVAL)
        await call.write(pb.UploadImageEditJobRequest(header=pb.UploadHeader(request=request)))
        await call.done_writing()
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await call
        assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, raised.value.details()
        assert error_details(raised.value) == ("PAYLOAD_TOO_LARGE", "image")
    assert stack.stored_jobs() == 0


async def test_health_and_reflection(stack: Stack) -> None:
    health = health_pb2_grpc.HealthStub(stack.channel)
    for service in ("", "asyncgate.v1.JobService"):
        reply = await health.Check(health_pb2.HealthCheckRequest(service=service))
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
    reflection = reflection_pb2_grpc.ServerReflectionStub(stack.channel)
    request = reflection_pb2.ServerReflectionRequest(list_services="")
    async for reply in reflection.ServerReflectionInfo(iter([request])):
        names = {s.name for s in reply.list_services_response.service}
        assert {"asyncgate.v1.JobService", "grpc.health.v1.Health"} <= names

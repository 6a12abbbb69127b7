"""The client over gRPC (grpc.aio): JobService calls, errors mapped to the client's."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import aiohttp
import grpc
from google.protobuf.duration_pb2 import Duration

from asyncgate.client import grpc_convert as convert
from asyncgate.client.errors import from_grpc, from_rest
from asyncgate.client.transport import ListQuery, Submission, auth_headers
from asyncgate.client.types import InputFile, Job, JobPage, OutputRef
from asyncgate.v1 import (
    embedding_pb2,
    image_common_pb2,
    image_edit_pb2,
    image_generation_pb2,
    image_variation_pb2,
    job_pb2,
    job_service_pb2,
    job_service_pb2_grpc,
)

T = TypeVar("T")

UPLOAD_ABOVE_BYTES = 2 * 1024 * 1024
"""Edits whose files are larger than this go through the UploadImageEditJob stream, so
that no message comes near the server's maximum message size."""
CHUNK_BYTES = 1024 * 1024
CALL_SECONDS = 60.0
"""Deadline of a short call, so that a server that stopped answering is Unavailable (and,
for a safe call, retried) rather than a hang."""
TRANSFER_SECONDS = 600.0
"""Deadline of a call that moves files (submits with images, output reads)."""


async def _mapped(call: Callable[[], Awaitable[T]]) -> T:
    try:
        return await call()
    except grpc.aio.AioRpcError as error:
        raise from_grpc(error) from None


def _proto_image(image: InputFile) -> image_common_pb2.InputImage:
    return image_common_pb2.InputImage(
        data=image.data, filename=image.filename, content_type=image.content_type
    )


class GrpcTransport:
    def __init__(self, target: str, *, key: str | None = None, bearer_token: str | None = None) -> None:
        self._channel = grpc.aio.insecure_channel(
            target, options=[("grpc.max_receive_message_length", 64 * 1024 * 1024)]
        )
        self._stub = job_service_pb2_grpc.JobServiceStub(self._channel)
        self._metadata = tuple(auth_headers(key, bearer_token).items())
        self._http: aiohttp.ClientSession | None = None

    def _options(self, submission: Submission) -> job_service_pb2.JobOptions:
        options = job_service_pb2.JobOptions(
            request_id=submission.idempotency_key or "", labels=dict(submission.labels)
        )
        if submission.result_ttl_seconds is not None:
            options.result_ttl_seconds = submission.result_ttl_seconds
        return options

    async def submit(self, submission: Submission) -> Job:
        stub, md, options, params = self._stub, self._metadata, self._options(submission), submission.params
        response: Any
        if submission.operation == "image_edit":
            request = image_edit_pb2.ImageEditRequest()
            convert.fill_request(request, params)
            size = sum(len(i.data) for i in submission.images) + len(
                submission.mask.data if submission.mask else b""
            )
            if size > UPLOAD_ABOVE_BYTES:
                header = job_service_pb2.UploadHeader(request=request, options=options)
                response = await _mapped(
                    lambda: stub.UploadImageEditJob(
                        self._upload_stream(header, submission), metadata=md, timeout=TRANSFER_SECONDS
                    )
                )
            else:
                request.images.extend(_proto_image(image) for image in submission.images)
                if submission.mask is not None:
                    request.mask.CopyFrom(_proto_image(submission.mask))
                message = job_service_pb2.CreateImageEditJobRequest(request=request, options=options)
                response = await _mapped(
                    lambda: stub.CreateImageEditJob(message, metadata=md, timeout=TRANSFER_SECONDS)
                )
        elif submission.operation == "image_generation":
            generation = image_generation_pb2.ImageGenerationRequest()
            convert.fill_request(generation, params)
            generation_message = job_service_pb2.CreateImageGenerationJobRequest(
                request=generation, options=options
            )
            response = await _mapped(
                lambda: stub.CreateImageGenerationJob(
                    generation_message, metadata=md, timeout=TRANSFER_SECONDS
                )
            )
        elif submission.operation == "image_variation":
            variation = image_variation_pb2.ImageVariationRequest()
            convert.fill_request(variation, params)
            variation.image.CopyFrom(_proto_image(submission.images[0]))
            variation_message = job_service_pb2.CreateImageVariationJobRequest(
                request=variation, options=options
            )
            response = await _mapped(
                lambda: stub.CreateImageVariationJob(variation_message, metadata=md, timeout=TRANSFER_SECONDS)
            )
        else:
            fields = {k: v for k, v in params.items() if k != "input"}
            embedding = embedding_pb2.EmbeddingRequest(input=convert.embedding_input(params["input"]))
            convert.fill_request(embedding, fields)
            embedding_message = job_service_pb2.CreateEmbeddingJobRequest(request=embedding, options=options)
            response = await _mapped(
                lambda: stub.CreateEmbeddingJob(embedding_message, metadata=md, timeout=TRANSFER_SECONDS)
            )
        return await self._job(response.job)

    @staticmethod
    async def _upload_stream(
        header: job_service_pb2.UploadHeader, submission: Submission
    ) -> AsyncIterator[job_service_pb2.UploadImageEditJobRequest]:
        message = job_service_pb2.UploadImageEditJobRequest
        yield message(header=header)
        files = [(job_service_pb2.UPLOAD_FILE_ROLE_IMAGE, image) for image in submission.images]
        if submission.mask is not None:
            files.append((job_service_pb2.UPLOAD_FILE_ROLE_MASK, submission.mask))
        for role, file in files:
            yield message(
                file=job_service_pb2.UploadFile(
                    role=role, filename=file.filename, content_type=file.content_type
                )
            )
            for start in range(0, len(file.data), CHUNK_BYTES):
                yield message(chunk=file.data[start : start + CHUNK_BYTES])

    async def _job(self, message: job_pb2.Job) -> Job:
        """The Job, with an embedding job's vectors read (they are stored apart)."""
        if not message.HasField("embedding_result"):
            return convert.to_job(message)
        result = message.embedding_result
        raw = await self.read_output(message.id, OutputRef(result.vectors.index, result.vectors.access_token))
        return convert.to_job(message, convert.embeddings_result(result, raw))

    async def get(self, job_id: str) -> Job:
        request = job_service_pb2.GetJobRequest(id=job_id)
        response = await _mapped(
            lambda: self._stub.GetJob(request, metadata=self._metadata, timeout=CALL_SECONDS)
        )
        return await self._job(response.job)

    async def wait_once(self, job_id: str, timeout: float) -> Job:
        duration = Duration()
        duration.FromNanoseconds(int(timeout * 1e9))
        request = job_service_pb2.WaitJobRequest(id=job_id, timeout=duration)
        response = await _mapped(
            lambda: self._stub.WaitJob(request, metadata=self._metadata, timeout=timeout + CALL_SECONDS)
        )
        return await self._job(response.job)

    async def watch(self, job_id: str, after_change: int) -> AsyncIterator[tuple[int, Job]]:
        request = job_service_pb2.WatchJobRequest(id=job_id, after_change_number=after_change)
        call = self._stub.WatchJob(request, metadata=self._metadata)
        try:
            async for response in call:
                yield response.job.change_number, await self._job(response.job)
        except grpc.aio.AioRpcError as error:
            raise from_grpc(error) from None
        finally:
            call.cancel()

    async def cancel(self, job_id: str) -> Job:
        request = job_service_pb2.CancelJobRequest(id=job_id)
        response = await _mapped(
            lambda: self._stub.CancelJob(request, metadata=self._metadata, timeout=CALL_SECONDS)
        )
        return await self._job(response.job)

    async def retry(self, job_id: str) -> Job:
        request = job_service_pb2.RetryJobRequest(id=job_id)
        response = await _mapped(
            lambda: self._stub.RetryJob(request, metadata=self._metadata, timeout=CALL_SECONDS)
        )
        return await self._job(response.job)

    async def delete(self, job_id: str) -> None:
        request = job_service_pb2.DeleteJobRequest(id=job_id)
        await _mapped(lambda: self._stub.DeleteJob(request, metadata=self._metadata, timeout=CALL_SECONDS))

    async def list(self, query: ListQuery) -> JobPage:
        request = job_service_pb2.ListJobsRequest(
            page_size=query.page_size or 0,
            page_token=query.page_token or "",
            statuses=[convert.STATUS_VALUES[s] for s in query.statuses],  # type: ignore[misc,index]
            request_type=convert.REQUEST_TYPE_VALUES[query.request_type] if query.request_type else 0,  # type: ignore[arg-type,index]
            labels=dict(query.labels),
        )
        if query.created_after is not None:
            request.create_time_after.CopyFrom(convert.timestamp(query.created_after))
        if query.created_before is not None:
            request.create_time_before.CopyFrom(convert.timestamp(query.created_before))
        response = await _mapped(
            lambda: self._stub.ListJobs(request, metadata=self._metadata, timeout=CALL_SECONDS)
        )
        return JobPage(tuple(convert.to_job(job) for job in response.jobs), response.next_page_token or None)

    async def read_output(self, job_id: str, output: OutputRef) -> bytes:
        request = job_service_pb2.ReadJobOutputRequest(
            job_id=job_id, index=output.index, access_token=output.token
        )
        chunks: list[bytes] = []
        try:
            async for response in self._stub.ReadJobOutput(
                request, metadata=self._metadata, timeout=TRANSFER_SECONDS
            ):
                chunks.append(response.chunk)
        except grpc.aio.AioRpcError as error:
            raise from_grpc(error) from None
        return b"".join(chunks)

    async def fetch_url(self, url: str) -> bytes:
        """A provider's own image URL (the server keeps no copy of those)."""
        if self._http is None:
            self._http = aiohttp.ClientSession()
        async with self._http.get(url) as response:
            if response.status >= 300:
                raise from_rest(response.status, None)
            return await response.read()

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()
        await self._channel.close(None)

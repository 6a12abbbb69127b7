"""The JSON submits: image generations and embeddings."""

from __future__ import annotations

from aiohttp import web

from asyncgate.v1 import job_service_pb2 as pb
from rest_bridge.context import CONFIG, JOBS, created_response, forwarded_metadata, job_options
from rest_bridge.json_body import embedding_request, image_generation_request, read_json_object


async def submit_image_generation(request: web.Request) -> web.StreamResponse:
    config = request.app[CONFIG]
    metadata = forwarded_metadata(request)
    body = await read_json_object(request, config)
    create = pb.CreateImageGenerationJobRequest(
        request=image_generation_request(body), options=job_options(request)
    )
    return await created_response(
        request.app[JOBS].CreateImageGenerationJob(
            create, metadata=metadata, timeout=config.grpc_timeout_seconds
        )
    )


async def submit_embedding(request: web.Request) -> web.StreamResponse:
    config = request.app[CONFIG]
    metadata = forwarded_metadata(request)
    body = await read_json_object(request, config)
    create = pb.CreateEmbeddingJobRequest(request=embedding_request(body), options=job_options(request))
    return await created_response(
        request.app[JOBS].CreateEmbeddingJob(create, metadata=metadata, timeout=config.grpc_timeout_seconds)
    )

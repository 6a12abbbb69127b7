import datetime

from asyncgate.v1 import embedding_pb2 as _embedding_pb2
from asyncgate.v1 import image_edit_pb2 as _image_edit_pb2
from asyncgate.v1 import image_generation_pb2 as _image_generation_pb2
from asyncgate.v1 import image_variation_pb2 as _image_variation_pb2
from asyncgate.v1 import job_pb2 as _job_pb2
from google.api import annotations_pb2 as _annotations_pb2
from google.api import field_behavior_pb2 as _field_behavior_pb2
from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class UploadFileRole(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    UPLOAD_FILE_ROLE_UNSPECIFIED: _ClassVar[UploadFileRole]
    UPLOAD_FILE_ROLE_IMAGE: _ClassVar[UploadFileRole]
    UPLOAD_FILE_ROLE_MASK: _ClassVar[UploadFileRole]
UPLOAD_FILE_ROLE_UNSPECIFIED: UploadFileRole
UPLOAD_FILE_ROLE_IMAGE: UploadFileRole
UPLOAD_FILE_ROLE_MASK: UploadFileRole

class JobOptions(_message.Message):
    __slots__ = ("result_ttl_seconds", "request_id", "labels", "webhook")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    RESULT_TTL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    WEBHOOK_FIELD_NUMBER: _ClassVar[int]
    result_ttl_seconds: int
    request_id: str
    labels: _containers.ScalarMap[str, str]
    webhook: str
    def __init__(self, result_ttl_seconds: _Optional[int] = ..., request_id: _Optional[str] = ..., labels: _Optional[_Mapping[str, str]] = ..., webhook: _Optional[str] = ...) -> None: ...

class CreateImageEditJobRequest(_message.Message):
    __slots__ = ("request", "options")
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    request: _image_edit_pb2.ImageEditRequest
    options: JobOptions
    def __init__(self, request: _Optional[_Union[_image_edit_pb2.ImageEditRequest, _Mapping]] = ..., options: _Optional[_Union[JobOptions, _Mapping]] = ...) -> None: ...

class CreateImageEditJobResponse(_message.Message):
    __slots__ = ("job",)
    JOB_FIELD_NUMBER: _ClassVar[int]
    job: _job_pb2.Job
    def __init__(self, job: _Optional[_Union[_job_pb2.Job, _Mapping]] = ...) -> None: ...

class CreateImageGenerationJobRequest(_message.Message):
    __slots__ = ("request", "options")
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    request: _image_generation_pb2.ImageGenerationRequest
    options: JobOptions
    def __init__(self, request: _Optional[_Union[_image_generation_pb2.ImageGenerationRequest, _Mapping]] = ..., options: _Optional[_Union[JobOptions, _Mapping]] = ...) -> None: ...

class CreateImageGenerationJobResponse(_message.Message):
    __slots__ = ("job",)
    JOB_FIELD_NUMBER: _ClassVar[int]
    job: _job_pb2.Job
    def __init__(self, job: _Optional[_Union[_job_pb2.Job, _Mapping]] = ...) -> None: ...

class CreateImageVariationJobRequest(_message.Message):
    __slots__ = ("request", "options")
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    request: _image_variation_pb2.ImageVariationRequest
    options: JobOptions
    def __init__(self, request: _Optional[_Union[_image_variation_pb2.ImageVariationRequest, _Mapping]] = ..., options: _Optional[_Union[JobOptions, _Mapping]] = ...) -> None: ...

class CreateImageVariationJobResponse(_message.Message):
    __slots__ = ("job",)
    JOB_FIELD_NUMBER: _ClassVar[int]
    job: _job_pb2.Job
    def __init__(self, job: _Optional[_Union[_job_pb2.Job, _Mapping]] = ...) -> None: ...

class CreateEmbeddingJobRequest(_message.Message):
    __slots__ = ("request", "options")
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    request: _embedding_pb2.EmbeddingRequest
    options: JobOptions
    def __init__(self, request: _Optional[_Union[_embedding_pb2.EmbeddingRequest, _Mapping]] = ..., options: _Optional[_Union[JobOptions, _Mapping]] = ...) -> None: ...

class CreateEmbeddingJobResponse(_message.Message):
    __slots__ = ("job",)
    JOB_FIELD_NUMBER: _ClassVar[int]
    job: _job_pb2.Job
    def __init__(self, job: _Optional[_Union[_job_pb2.Job, _Mapping]] = ...) -> None: ...

class UploadImageEditJobRequest(_message.Message):
    __slots__ = ("header", "file", "chunk")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    FILE_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    header: UploadHeader
    file: UploadFile
    chunk: bytes
    def __init__(self, header: _Optional[_Union[UploadHeader, _Mapping]] = ..., file: _Optional[_Union[UploadFile, _Mapping]] = ..., chunk: _Optional[bytes] = ...) -> None: ...

class UploadHeader(_message.Message):
    __slots__ = ("request", "options")
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    request: _image_edit_pb2.ImageEditRequest
    options: JobOptions
    def __init__(self, request: _Optional[_Union[_image_edit_pb2.ImageEditRequest, _Mapping]] = ..., options: _Optional[_Union[JobOptions, _Mapping]] = ...) -> None: ...

class UploadFile(_message.Message):
    __slots__ = ("role", "filename", "content_type")
    ROLE_FIELD_NUMBER: _ClassVar[int]
    FILENAME_FIELD_NUMBER: _ClassVar[int]
    CONTENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    role: UploadFileRole
    filename: str
    content_type: str
    def __init__(self, role: _Optional[_Union[UploadFileRole, str]] = ..., filename: _Optional[str] = ..., content_type: _Optional[str] = ...) -> None: ...

class UploadImageEditJobResponse(_message.Message):
    __slots__ = ("job",)
    JOB_FIELD_NUMBER: _ClassVar[int]
    job: _job_pb2.Job
    def __init__(self, job: _Optional[_Union[_job_pb2.Job, _Mapping]] = ...) -> None: ...

class GetJobRequest(_message.Message):
    __slots__ = ("id", "request_type")
    ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_TYPE_FIELD_NUMBER: _ClassVar[int]
    id: str
    request_type: _job_pb2.RequestType
    def __init__(self, id: _Optional[str] = ..., request_type: _Optional[_Union[_job_pb2.RequestType, str]] = ...) -> None: ...

class GetJobResponse(_message.Message):
    __slots__ = ("job",)
    JOB_FIELD_NUMBER: _ClassVar[int]
    job: _job_pb2.Job
    def __init__(self, job: _Optional[_Union[_job_pb2.Job, _Mapping]] = ...) -> None: ...

class ReadJobOutputRequest(_message.Message):
    __slots__ = ("job_id", "index", "access_token")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    ACCESS_TOKEN_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    index: int
    access_token: str
    def __init__(self, job_id: _Optional[str] = ..., index: _Optional[int] = ..., access_token: _Optional[str] = ...) -> None: ...

class ReadJobOutputResponse(_message.Message):
    __slots__ = ("content_type", "size_bytes", "chunk")
    CONTENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    content_type: str
    size_bytes: int
    chunk: bytes
    def __init__(self, content_type: _Optional[str] = ..., size_bytes: _Optional[int] = ..., chunk: _Optional[bytes] = ...) -> None: ...

class CheckCallerRequest(_message.Message):
    __slots__ = ("model",)
    MODEL_FIELD_NUMBER: _ClassVar[int]
    model: str
    def __init__(self, model: _Optional[str] = ...) -> None: ...

class CheckCallerResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class WaitJobRequest(_message.Message):
    __slots__ = ("id", "timeout")
    ID_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    id: str
    timeout: _duration_pb2.Duration
    def __init__(self, id: _Optional[str] = ..., timeout: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class WaitJobResponse(_message.Message):
    __slots__ = ("job",)
    JOB_FIELD_NUMBER: _ClassVar[int]
    job: _job_pb2.Job
    def __init__(self, job: _Optional[_Union[_job_pb2.Job, _Mapping]] = ...) -> None: ...

class WatchJobRequest(_message.Message):
    __slots__ = ("id", "after_change_number")
    ID_FIELD_NUMBER: _ClassVar[int]
    AFTER_CHANGE_NUMBER_FIELD_NUMBER: _ClassVar[int]
    id: str
    after_change_number: int
    def __init__(self, id: _Optional[str] = ..., after_change_number: _Optional[int] = ...) -> None: ...

class WatchJobResponse(_message.Message):
    __slots__ = ("job",)
    JOB_FIELD_NUMBER: _ClassVar[int]
    job: _job_pb2.Job
    def __init__(self, job: _Optional[_Union[_job_pb2.Job, _Mapping]] = ...) -> None: ...

class CancelJobRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class CancelJobResponse(_message.Message):
    __slots__ = ("job",)
    JOB_FIELD_NUMBER: _ClassVar[int]
    job: _job_pb2.Job
    def __init__(self, job: _Optional[_Union[_job_pb2.Job, _Mapping]] = ...) -> None: ...

class DeleteJobRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class DeleteJobResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class RetryJobRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class RetryJobResponse(_message.Message):
    __slots__ = ("job",)
    JOB_FIELD_NUMBER: _ClassVar[int]
    job: _job_pb2.Job
    def __init__(self, job: _Optional[_Union[_job_pb2.Job, _Mapping]] = ...) -> None: ...

class ListJobsRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "statuses", "request_type", "labels", "create_time_after", "create_time_before")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    STATUSES_FIELD_NUMBER: _ClassVar[int]
    REQUEST_TYPE_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_AFTER_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_BEFORE_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    statuses: _containers.RepeatedScalarFieldContainer[_job_pb2.JobStatus]
    request_type: _job_pb2.RequestType
    labels: _containers.ScalarMap[str, str]
    create_time_after: _timestamp_pb2.Timestamp
    create_time_before: _timestamp_pb2.Timestamp
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., statuses: _Optional[_Iterable[_Union[_job_pb2.JobStatus, str]]] = ..., request_type: _Optional[_Union[_job_pb2.RequestType, str]] = ..., labels: _Optional[_Mapping[str, str]] = ..., create_time_after: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., create_time_before: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListJobsResponse(_message.Message):
    __slots__ = ("jobs", "next_page_token")
    JOBS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    jobs: _containers.RepeatedCompositeFieldContainer[_job_pb2.Job]
    next_page_token: str
    def __init__(self, jobs: _Optional[_Iterable[_Union[_job_pb2.Job, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ListWebhookDeliveriesRequest(_message.Message):
    __slots__ = ("endpoint", "page_size")
    ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    endpoint: str
    page_size: int
    def __init__(self, endpoint: _Optional[str] = ..., page_size: _Optional[int] = ...) -> None: ...

class WebhookAttempt(_message.Message):
    __slots__ = ("attempt", "start_time", "status", "error", "duration_seconds", "excerpt")
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    DURATION_SECONDS_FIELD_NUMBER: _ClassVar[int]
    EXCERPT_FIELD_NUMBER: _ClassVar[int]
    attempt: int
    start_time: _timestamp_pb2.Timestamp
    status: int
    error: str
    duration_seconds: float
    excerpt: str
    def __init__(self, attempt: _Optional[int] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., status: _Optional[int] = ..., error: _Optional[str] = ..., duration_seconds: _Optional[float] = ..., excerpt: _Optional[str] = ...) -> None: ...

class WebhookDelivery(_message.Message):
    __slots__ = ("webhook_id", "endpoint", "job_id", "event_type", "create_time", "state", "next_attempt_time", "last_status", "last_error", "attempts")
    WEBHOOK_ID_FIELD_NUMBER: _ClassVar[int]
    ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    EVENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    NEXT_ATTEMPT_TIME_FIELD_NUMBER: _ClassVar[int]
    LAST_STATUS_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    webhook_id: str
    endpoint: str
    job_id: str
    event_type: str
    create_time: _timestamp_pb2.Timestamp
    state: str
    next_attempt_time: _timestamp_pb2.Timestamp
    last_status: int
    last_error: str
    attempts: _containers.RepeatedCompositeFieldContainer[WebhookAttempt]
    def __init__(self, webhook_id: _Optional[str] = ..., endpoint: _Optional[str] = ..., job_id: _Optional[str] = ..., event_type: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., state: _Optional[str] = ..., next_attempt_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_status: _Optional[int] = ..., last_error: _Optional[str] = ..., attempts: _Optional[_Iterable[_Union[WebhookAttempt, _Mapping]]] = ...) -> None: ...

class ListWebhookDeliveriesResponse(_message.Message):
    __slots__ = ("deliveries",)
    DELIVERIES_FIELD_NUMBER: _ClassVar[int]
    deliveries: _containers.RepeatedCompositeFieldContainer[WebhookDelivery]
    def __init__(self, deliveries: _Optional[_Iterable[_Union[WebhookDelivery, _Mapping]]] = ...) -> None: ...

class RedeliverWebhookRequest(_message.Message):
    __slots__ = ("endpoint", "webhook_id")
    ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    WEBHOOK_ID_FIELD_NUMBER: _ClassVar[int]
    endpoint: str
    webhook_id: str
    def __init__(self, endpoint: _Optional[str] = ..., webhook_id: _Optional[str] = ...) -> None: ...

class RedeliverWebhookResponse(_message.Message):
    __slots__ = ("delivery",)
    DELIVERY_FIELD_NUMBER: _ClassVar[int]
    delivery: WebhookDelivery
    def __init__(self, delivery: _Optional[_Union[WebhookDelivery, _Mapping]] = ...) -> None: ...

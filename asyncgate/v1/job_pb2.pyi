import datetime

from google.api import field_behavior_pb2 as _field_behavior_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class JobStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    JOB_STATUS_UNSPECIFIED: _ClassVar[JobStatus]
    JOB_STATUS_PENDING: _ClassVar[JobStatus]
    JOB_STATUS_PROCESSING: _ClassVar[JobStatus]
    JOB_STATUS_COMPLETED: _ClassVar[JobStatus]
    JOB_STATUS_FAILED: _ClassVar[JobStatus]
    JOB_STATUS_CANCELLED: _ClassVar[JobStatus]

class RequestType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    REQUEST_TYPE_UNSPECIFIED: _ClassVar[RequestType]
    REQUEST_TYPE_IMAGE_EDIT: _ClassVar[RequestType]
    REQUEST_TYPE_IMAGE_GENERATION: _ClassVar[RequestType]
    REQUEST_TYPE_EMBEDDING: _ClassVar[RequestType]
    REQUEST_TYPE_IMAGE_VARIATION: _ClassVar[RequestType]
JOB_STATUS_UNSPECIFIED: JobStatus
JOB_STATUS_PENDING: JobStatus
JOB_STATUS_PROCESSING: JobStatus
JOB_STATUS_COMPLETED: JobStatus
JOB_STATUS_FAILED: JobStatus
JOB_STATUS_CANCELLED: JobStatus
REQUEST_TYPE_UNSPECIFIED: RequestType
REQUEST_TYPE_IMAGE_EDIT: RequestType
REQUEST_TYPE_IMAGE_GENERATION: RequestType
REQUEST_TYPE_EMBEDDING: RequestType
REQUEST_TYPE_IMAGE_VARIATION: RequestType

class Job(_message.Message):
    __slots__ = ("id", "status", "request_type", "model", "create_time", "complete_time", "expire_time", "status_code", "image_result", "embedding_result", "error", "attempt", "queue_position", "labels", "change_number", "webhook")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_TYPE_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    COMPLETE_TIME_FIELD_NUMBER: _ClassVar[int]
    EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    STATUS_CODE_FIELD_NUMBER: _ClassVar[int]
    IMAGE_RESULT_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_RESULT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    QUEUE_POSITION_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    CHANGE_NUMBER_FIELD_NUMBER: _ClassVar[int]
    WEBHOOK_FIELD_NUMBER: _ClassVar[int]
    id: str
    status: JobStatus
    request_type: RequestType
    model: str
    create_time: _timestamp_pb2.Timestamp
    complete_time: _timestamp_pb2.Timestamp
    expire_time: _timestamp_pb2.Timestamp
    status_code: int
    image_result: ImageResult
    embedding_result: EmbeddingResult
    error: JobError
    attempt: int
    queue_position: int
    labels: _containers.ScalarMap[str, str]
    change_number: int
    webhook: str
    def __init__(self, id: _Optional[str] = ..., status: _Optional[_Union[JobStatus, str]] = ..., request_type: _Optional[_Union[RequestType, str]] = ..., model: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., complete_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., expire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., status_code: _Optional[int] = ..., image_result: _Optional[_Union[ImageResult, _Mapping]] = ..., embedding_result: _Optional[_Union[EmbeddingResult, _Mapping]] = ..., error: _Optional[_Union[JobError, _Mapping]] = ..., attempt: _Optional[int] = ..., queue_position: _Optional[int] = ..., labels: _Optional[_Mapping[str, str]] = ..., change_number: _Optional[int] = ..., webhook: _Optional[str] = ...) -> None: ...

class ImageResult(_message.Message):
    __slots__ = ("created", "data", "usage", "background", "output_format", "quality", "size", "response_format", "extra_fields")
    CREATED_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    BACKGROUND_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FORMAT_FIELD_NUMBER: _ClassVar[int]
    QUALITY_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_FORMAT_FIELD_NUMBER: _ClassVar[int]
    EXTRA_FIELDS_FIELD_NUMBER: _ClassVar[int]
    created: int
    data: _containers.RepeatedCompositeFieldContainer[ResultImage]
    usage: _struct_pb2.Struct
    background: str
    output_format: str
    quality: str
    size: str
    response_format: str
    extra_fields: ExtraFields
    def __init__(self, created: _Optional[int] = ..., data: _Optional[_Iterable[_Union[ResultImage, _Mapping]]] = ..., usage: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., background: _Optional[str] = ..., output_format: _Optional[str] = ..., quality: _Optional[str] = ..., size: _Optional[str] = ..., response_format: _Optional[str] = ..., extra_fields: _Optional[_Union[ExtraFields, _Mapping]] = ...) -> None: ...

class ResultImage(_message.Message):
    __slots__ = ("url", "stored", "revised_prompt")
    URL_FIELD_NUMBER: _ClassVar[int]
    STORED_FIELD_NUMBER: _ClassVar[int]
    REVISED_PROMPT_FIELD_NUMBER: _ClassVar[int]
    url: str
    stored: StoredOutput
    revised_prompt: str
    def __init__(self, url: _Optional[str] = ..., stored: _Optional[_Union[StoredOutput, _Mapping]] = ..., revised_prompt: _Optional[str] = ...) -> None: ...

class StoredOutput(_message.Message):
    __slots__ = ("index", "content_type", "size_bytes", "access_token", "direct_url")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    CONTENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    ACCESS_TOKEN_FIELD_NUMBER: _ClassVar[int]
    DIRECT_URL_FIELD_NUMBER: _ClassVar[int]
    index: int
    content_type: str
    size_bytes: int
    access_token: str
    direct_url: str
    def __init__(self, index: _Optional[int] = ..., content_type: _Optional[str] = ..., size_bytes: _Optional[int] = ..., access_token: _Optional[str] = ..., direct_url: _Optional[str] = ...) -> None: ...

class EmbeddingResult(_message.Message):
    __slots__ = ("model", "count", "dimensions", "prompt_tokens", "total_tokens", "vectors", "encoding_format", "extra_fields")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    DIMENSIONS_FIELD_NUMBER: _ClassVar[int]
    PROMPT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_TOKENS_FIELD_NUMBER: _ClassVar[int]
    VECTORS_FIELD_NUMBER: _ClassVar[int]
    ENCODING_FORMAT_FIELD_NUMBER: _ClassVar[int]
    EXTRA_FIELDS_FIELD_NUMBER: _ClassVar[int]
    model: str
    count: int
    dimensions: int
    prompt_tokens: int
    total_tokens: int
    vectors: StoredOutput
    encoding_format: str
    extra_fields: ExtraFields
    def __init__(self, model: _Optional[str] = ..., count: _Optional[int] = ..., dimensions: _Optional[int] = ..., prompt_tokens: _Optional[int] = ..., total_tokens: _Optional[int] = ..., vectors: _Optional[_Union[StoredOutput, _Mapping]] = ..., encoding_format: _Optional[str] = ..., extra_fields: _Optional[_Union[ExtraFields, _Mapping]] = ...) -> None: ...

class ExtraFields(_message.Message):
    __slots__ = ("provider", "model_requested", "request_type")
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    MODEL_REQUESTED_FIELD_NUMBER: _ClassVar[int]
    REQUEST_TYPE_FIELD_NUMBER: _ClassVar[int]
    provider: str
    model_requested: str
    request_type: str
    def __init__(self, provider: _Optional[str] = ..., model_requested: _Optional[str] = ..., request_type: _Optional[str] = ...) -> None: ...

class JobError(_message.Message):
    __slots__ = ("event_id", "type", "is_gateway_error", "status_code", "error", "extra_fields")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    IS_GATEWAY_ERROR_FIELD_NUMBER: _ClassVar[int]
    STATUS_CODE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    EXTRA_FIELDS_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    type: str
    is_gateway_error: bool
    status_code: int
    error: ErrorDetail
    extra_fields: ExtraFields
    def __init__(self, event_id: _Optional[str] = ..., type: _Optional[str] = ..., is_gateway_error: _Optional[bool] = ..., status_code: _Optional[int] = ..., error: _Optional[_Union[ErrorDetail, _Mapping]] = ..., extra_fields: _Optional[_Union[ExtraFields, _Mapping]] = ...) -> None: ...

class ErrorDetail(_message.Message):
    __slots__ = ("type", "code", "message", "param", "event_id")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    PARAM_FIELD_NUMBER: _ClassVar[int]
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    type: str
    code: str
    message: str
    param: str
    event_id: str
    def __init__(self, type: _Optional[str] = ..., code: _Optional[str] = ..., message: _Optional[str] = ..., param: _Optional[str] = ..., event_id: _Optional[str] = ...) -> None: ...

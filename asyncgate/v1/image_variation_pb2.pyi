from asyncgate.v1 import image_common_pb2 as _image_common_pb2
from google.api import field_behavior_pb2 as _field_behavior_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ImageVariationRequest(_message.Message):
    __slots__ = ("model", "image", "n", "size", "response_format", "user", "fallbacks", "extra_params")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    N_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_FORMAT_FIELD_NUMBER: _ClassVar[int]
    USER_FIELD_NUMBER: _ClassVar[int]
    FALLBACKS_FIELD_NUMBER: _ClassVar[int]
    EXTRA_PARAMS_FIELD_NUMBER: _ClassVar[int]
    model: str
    image: _image_common_pb2.InputImage
    n: int
    size: _image_common_pb2.ImageSize
    response_format: _image_common_pb2.ResponseFormat
    user: str
    fallbacks: _containers.RepeatedScalarFieldContainer[str]
    extra_params: _struct_pb2.Struct
    def __init__(self, model: _Optional[str] = ..., image: _Optional[_Union[_image_common_pb2.InputImage, _Mapping]] = ..., n: _Optional[int] = ..., size: _Optional[_Union[_image_common_pb2.ImageSize, str]] = ..., response_format: _Optional[_Union[_image_common_pb2.ResponseFormat, str]] = ..., user: _Optional[str] = ..., fallbacks: _Optional[_Iterable[str]] = ..., extra_params: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

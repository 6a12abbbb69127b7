from asyncgate.v1 import image_common_pb2 as _image_common_pb2
from google.api import field_behavior_pb2 as _field_behavior_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Style(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    STYLE_UNSPECIFIED: _ClassVar[Style]
    STYLE_VIVID: _ClassVar[Style]
    STYLE_NATURAL: _ClassVar[Style]

class Moderation(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MODERATION_UNSPECIFIED: _ClassVar[Moderation]
    MODERATION_LOW: _ClassVar[Moderation]
    MODERATION_AUTO: _ClassVar[Moderation]
STYLE_UNSPECIFIED: Style
STYLE_VIVID: Style
STYLE_NATURAL: Style
MODERATION_UNSPECIFIED: Moderation
MODERATION_LOW: Moderation
MODERATION_AUTO: Moderation

class ImageGenerationRequest(_message.Message):
    __slots__ = ("model", "prompt", "n", "size", "quality", "style", "response_format", "background", "moderation", "output_format", "output_compression", "partial_images", "seed", "negative_prompt", "num_inference_steps", "user", "fallbacks", "stream", "extra_params")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    N_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    QUALITY_FIELD_NUMBER: _ClassVar[int]
    STYLE_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_FORMAT_FIELD_NUMBER: _ClassVar[int]
    BACKGROUND_FIELD_NUMBER: _ClassVar[int]
    MODERATION_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FORMAT_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_COMPRESSION_FIELD_NUMBER: _ClassVar[int]
    PARTIAL_IMAGES_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    NEGATIVE_PROMPT_FIELD_NUMBER: _ClassVar[int]
    NUM_INFERENCE_STEPS_FIELD_NUMBER: _ClassVar[int]
    USER_FIELD_NUMBER: _ClassVar[int]
    FALLBACKS_FIELD_NUMBER: _ClassVar[int]
    STREAM_FIELD_NUMBER: _ClassVar[int]
    EXTRA_PARAMS_FIELD_NUMBER: _ClassVar[int]
    model: str
    prompt: str
    n: int
    size: _image_common_pb2.ImageSize
    quality: _image_common_pb2.Quality
    style: Style
    response_format: _image_common_pb2.ResponseFormat
    background: _image_common_pb2.Background
    moderation: Moderation
    output_format: _image_common_pb2.OutputFormat
    output_compression: int
    partial_images: int
    seed: int
    negative_prompt: str
    num_inference_steps: int
    user: str
    fallbacks: _containers.RepeatedScalarFieldContainer[str]
    stream: bool
    extra_params: _struct_pb2.Struct
    def __init__(self, model: _Optional[str] = ..., prompt: _Optional[str] = ..., n: _Optional[int] = ..., size: _Optional[_Union[_image_common_pb2.ImageSize, str]] = ..., quality: _Optional[_Union[_image_common_pb2.Quality, str]] = ..., style: _Optional[_Union[Style, str]] = ..., response_format: _Optional[_Union[_image_common_pb2.ResponseFormat, str]] = ..., background: _Optional[_Union[_image_common_pb2.Background, str]] = ..., moderation: _Optional[_Union[Moderation, str]] = ..., output_format: _Optional[_Union[_image_common_pb2.OutputFormat, str]] = ..., output_compression: _Optional[int] = ..., partial_images: _Optional[int] = ..., seed: _Optional[int] = ..., negative_prompt: _Optional[str] = ..., num_inference_steps: _Optional[int] = ..., user: _Optional[str] = ..., fallbacks: _Optional[_Iterable[str]] = ..., stream: _Optional[bool] = ..., extra_params: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

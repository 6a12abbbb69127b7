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

class EditType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EDIT_TYPE_UNSPECIFIED: _ClassVar[EditType]
    EDIT_TYPE_INPAINTING: _ClassVar[EditType]
    EDIT_TYPE_OUTPAINTING: _ClassVar[EditType]
    EDIT_TYPE_BACKGROUND_REMOVAL: _ClassVar[EditType]

class InputFidelity(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    INPUT_FIDELITY_UNSPECIFIED: _ClassVar[InputFidelity]
    INPUT_FIDELITY_LOW: _ClassVar[InputFidelity]
    INPUT_FIDELITY_HIGH: _ClassVar[InputFidelity]
EDIT_TYPE_UNSPECIFIED: EditType
EDIT_TYPE_INPAINTING: EditType
EDIT_TYPE_OUTPAINTING: EditType
EDIT_TYPE_BACKGROUND_REMOVAL: EditType
INPUT_FIDELITY_UNSPECIFIED: InputFidelity
INPUT_FIDELITY_LOW: InputFidelity
INPUT_FIDELITY_HIGH: InputFidelity

class ImageEditRequest(_message.Message):
    __slots__ = ("model", "prompt", "images", "mask", "type", "n", "size", "response_format", "stream", "background", "input_fidelity", "partial_images", "quality", "output_format", "output_compression", "num_inference_steps", "seed", "negative_prompt", "user", "fallbacks", "extra_params")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    MASK_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    N_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_FORMAT_FIELD_NUMBER: _ClassVar[int]
    STREAM_FIELD_NUMBER: _ClassVar[int]
    BACKGROUND_FIELD_NUMBER: _ClassVar[int]
    INPUT_FIDELITY_FIELD_NUMBER: _ClassVar[int]
    PARTIAL_IMAGES_FIELD_NUMBER: _ClassVar[int]
    QUALITY_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FORMAT_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_COMPRESSION_FIELD_NUMBER: _ClassVar[int]
    NUM_INFERENCE_STEPS_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    NEGATIVE_PROMPT_FIELD_NUMBER: _ClassVar[int]
    USER_FIELD_NUMBER: _ClassVar[int]
    FALLBACKS_FIELD_NUMBER: _ClassVar[int]
    EXTRA_PARAMS_FIELD_NUMBER: _ClassVar[int]
    model: str
    prompt: str
    images: _containers.RepeatedCompositeFieldContainer[_image_common_pb2.InputImage]
    mask: _image_common_pb2.InputImage
    type: EditType
    n: int
    size: _image_common_pb2.ImageSize
    response_format: _image_common_pb2.ResponseFormat
    stream: bool
    background: _image_common_pb2.Background
    input_fidelity: InputFidelity
    partial_images: int
    quality: _image_common_pb2.Quality
    output_format: _image_common_pb2.OutputFormat
    output_compression: int
    num_inference_steps: int
    seed: int
    negative_prompt: str
    user: str
    fallbacks: _containers.RepeatedScalarFieldContainer[str]
    extra_params: _struct_pb2.Struct
    def __init__(self, model: _Optional[str] = ..., prompt: _Optional[str] = ..., images: _Optional[_Iterable[_Union[_image_common_pb2.InputImage, _Mapping]]] = ..., mask: _Optional[_Union[_image_common_pb2.InputImage, _Mapping]] = ..., type: _Optional[_Union[EditType, str]] = ..., n: _Optional[int] = ..., size: _Optional[_Union[_image_common_pb2.ImageSize, str]] = ..., response_format: _Optional[_Union[_image_common_pb2.ResponseFormat, str]] = ..., stream: _Optional[bool] = ..., background: _Optional[_Union[_image_common_pb2.Background, str]] = ..., input_fidelity: _Optional[_Union[InputFidelity, str]] = ..., partial_images: _Optional[int] = ..., quality: _Optional[_Union[_image_common_pb2.Quality, str]] = ..., output_format: _Optional[_Union[_image_common_pb2.OutputFormat, str]] = ..., output_compression: _Optional[int] = ..., num_inference_steps: _Optional[int] = ..., seed: _Optional[int] = ..., negative_prompt: _Optional[str] = ..., user: _Optional[str] = ..., fallbacks: _Optional[_Iterable[str]] = ..., extra_params: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

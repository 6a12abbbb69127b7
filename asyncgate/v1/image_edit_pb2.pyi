from google.api import field_behavior_pb2 as _field_behavior_pb2
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

class ImageSize(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    IMAGE_SIZE_UNSPECIFIED: _ClassVar[ImageSize]
    IMAGE_SIZE_256X256: _ClassVar[ImageSize]
    IMAGE_SIZE_512X512: _ClassVar[ImageSize]
    IMAGE_SIZE_1024X1024: _ClassVar[ImageSize]
    IMAGE_SIZE_1536X1024: _ClassVar[ImageSize]
    IMAGE_SIZE_1024X1536: _ClassVar[ImageSize]
    IMAGE_SIZE_AUTO: _ClassVar[ImageSize]
    IMAGE_SIZE_1792X1024: _ClassVar[ImageSize]
    IMAGE_SIZE_1024X1792: _ClassVar[ImageSize]

class ResponseFormat(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RESPONSE_FORMAT_UNSPECIFIED: _ClassVar[ResponseFormat]
    RESPONSE_FORMAT_URL: _ClassVar[ResponseFormat]
    RESPONSE_FORMAT_B64_JSON: _ClassVar[ResponseFormat]

class Background(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    BACKGROUND_UNSPECIFIED: _ClassVar[Background]
    BACKGROUND_TRANSPARENT: _ClassVar[Background]
    BACKGROUND_OPAQUE: _ClassVar[Background]
    BACKGROUND_AUTO: _ClassVar[Background]

class InputFidelity(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    INPUT_FIDELITY_UNSPECIFIED: _ClassVar[InputFidelity]
    INPUT_FIDELITY_LOW: _ClassVar[InputFidelity]
    INPUT_FIDELITY_HIGH: _ClassVar[InputFidelity]

class Quality(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    QUALITY_UNSPECIFIED: _ClassVar[Quality]
    QUALITY_AUTO: _ClassVar[Quality]
    QUALITY_HIGH: _ClassVar[Quality]
    QUALITY_MEDIUM: _ClassVar[Quality]
    QUALITY_LOW: _ClassVar[Quality]
    QUALITY_STANDARD: _ClassVar[Quality]
    QUALITY_HD: _ClassVar[Quality]

class OutputFormat(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    OUTPUT_FORMAT_UNSPECIFIED: _ClassVar[OutputFormat]
    OUTPUT_FORMAT_PNG: _ClassVar[OutputFormat]
    OUTPUT_FORMAT_WEBP: _ClassVar[OutputFormat]
    OUTPUT_FORMAT_JPEG: _ClassVar[OutputFormat]
EDIT_TYPE_UNSPECIFIED: EditType
EDIT_TYPE_INPAINTING: EditType
EDIT_TYPE_OUTPAINTING: EditType
EDIT_TYPE_BACKGROUND_REMOVAL: EditType
IMAGE_SIZE_UNSPECIFIED: ImageSize
IMAGE_SIZE_256X256: ImageSize
IMAGE_SIZE_512X512: ImageSize
IMAGE_SIZE_1024X1024: ImageSize
IMAGE_SIZE_1536X1024: ImageSize
IMAGE_SIZE_1024X1536: ImageSize
IMAGE_SIZE_AUTO: ImageSize
IMAGE_SIZE_1792X1024: ImageSize
IMAGE_SIZE_1024X1792: ImageSize
RESPONSE_FORMAT_UNSPECIFIED: ResponseFormat
RESPONSE_FORMAT_URL: ResponseFormat
RESPONSE_FORMAT_B64_JSON: ResponseFormat
BACKGROUND_UNSPECIFIED: Background
BACKGROUND_TRANSPARENT: Background
BACKGROUND_OPAQUE: Background
BACKGROUND_AUTO: Background
INPUT_FIDELITY_UNSPECIFIED: InputFidelity
INPUT_FIDELITY_LOW: InputFidelity
INPUT_FIDELITY_HIGH: InputFidelity
QUALITY_UNSPECIFIED: Quality
QUALITY_AUTO: Quality
QUALITY_HIGH: Quality
QUALITY_MEDIUM: Quality
QUALITY_LOW: Quality
QUALITY_STANDARD: Quality
QUALITY_HD: Quality
OUTPUT_FORMAT_UNSPECIFIED: OutputFormat
OUTPUT_FORMAT_PNG: OutputFormat
OUTPUT_FORMAT_WEBP: OutputFormat
OUTPUT_FORMAT_JPEG: OutputFormat

class ImageEditRequest(_message.Message):
    __slots__ = ("model", "prompt", "images", "mask", "type", "n", "size", "response_format", "stream", "background", "input_fidelity", "partial_images", "quality", "output_format", "output_compression", "num_inference_steps", "seed", "negative_prompt", "user", "fallbacks", "extra_params")
    class ExtraParamsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
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
    images: _containers.RepeatedCompositeFieldContainer[InputImage]
    mask: InputImage
    type: EditType
    n: int
    size: ImageSize
    response_format: ResponseFormat
    stream: bool
    background: Background
    input_fidelity: InputFidelity
    partial_images: int
    quality: Quality
    output_format: OutputFormat
    output_compression: int
    num_inference_steps: int
    seed: int
    negative_prompt: str
    user: str
    fallbacks: _containers.RepeatedScalarFieldContainer[str]
    extra_params: _containers.ScalarMap[str, str]
    def __init__(self, model: _Optional[str] = ..., prompt: _Optional[str] = ..., images: _Optional[_Iterable[_Union[InputImage, _Mapping]]] = ..., mask: _Optional[_Union[InputImage, _Mapping]] = ..., type: _Optional[_Union[EditType, str]] = ..., n: _Optional[int] = ..., size: _Optional[_Union[ImageSize, str]] = ..., response_format: _Optional[_Union[ResponseFormat, str]] = ..., stream: _Optional[bool] = ..., background: _Optional[_Union[Background, str]] = ..., input_fidelity: _Optional[_Union[InputFidelity, str]] = ..., partial_images: _Optional[int] = ..., quality: _Optional[_Union[Quality, str]] = ..., output_format: _Optional[_Union[OutputFormat, str]] = ..., output_compression: _Optional[int] = ..., num_inference_steps: _Optional[int] = ..., seed: _Optional[int] = ..., negative_prompt: _Optional[str] = ..., user: _Optional[str] = ..., fallbacks: _Optional[_Iterable[str]] = ..., extra_params: _Optional[_Mapping[str, str]] = ...) -> None: ...

class InputImage(_message.Message):
    __slots__ = ("data", "filename", "content_type")
    DATA_FIELD_NUMBER: _ClassVar[int]
    FILENAME_FIELD_NUMBER: _ClassVar[int]
    CONTENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    filename: str
    content_type: str
    def __init__(self, data: _Optional[bytes] = ..., filename: _Optional[str] = ..., content_type: _Optional[str] = ...) -> None: ...

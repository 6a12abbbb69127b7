from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

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

class InputImage(_message.Message):
    __slots__ = ("data", "filename", "content_type")
    DATA_FIELD_NUMBER: _ClassVar[int]
    FILENAME_FIELD_NUMBER: _ClassVar[int]
    CONTENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    filename: str
    content_type: str
    def __init__(self, data: _Optional[bytes] = ..., filename: _Optional[str] = ..., content_type: _Optional[str] = ...) -> None: ...

from google.api import field_behavior_pb2 as _field_behavior_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class EncodingFormat(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ENCODING_FORMAT_UNSPECIFIED: _ClassVar[EncodingFormat]
    ENCODING_FORMAT_FLOAT: _ClassVar[EncodingFormat]
    ENCODING_FORMAT_BASE64: _ClassVar[EncodingFormat]
ENCODING_FORMAT_UNSPECIFIED: EncodingFormat
ENCODING_FORMAT_FLOAT: EncodingFormat
ENCODING_FORMAT_BASE64: EncodingFormat

class EmbeddingRequest(_message.Message):
    __slots__ = ("model", "input", "encoding_format", "dimensions", "user", "fallbacks", "extra_params")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    INPUT_FIELD_NUMBER: _ClassVar[int]
    ENCODING_FORMAT_FIELD_NUMBER: _ClassVar[int]
    DIMENSIONS_FIELD_NUMBER: _ClassVar[int]
    USER_FIELD_NUMBER: _ClassVar[int]
    FALLBACKS_FIELD_NUMBER: _ClassVar[int]
    EXTRA_PARAMS_FIELD_NUMBER: _ClassVar[int]
    model: str
    input: EmbeddingInput
    encoding_format: EncodingFormat
    dimensions: int
    user: str
    fallbacks: _containers.RepeatedScalarFieldContainer[str]
    extra_params: _struct_pb2.Struct
    def __init__(self, model: _Optional[str] = ..., input: _Optional[_Union[EmbeddingInput, _Mapping]] = ..., encoding_format: _Optional[_Union[EncodingFormat, str]] = ..., dimensions: _Optional[int] = ..., user: _Optional[str] = ..., fallbacks: _Optional[_Iterable[str]] = ..., extra_params: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class EmbeddingInput(_message.Message):
    __slots__ = ("text", "texts", "tokens", "token_lists")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    TEXTS_FIELD_NUMBER: _ClassVar[int]
    TOKENS_FIELD_NUMBER: _ClassVar[int]
    TOKEN_LISTS_FIELD_NUMBER: _ClassVar[int]
    text: str
    texts: TextList
    tokens: TokenList
    token_lists: TokenLists
    def __init__(self, text: _Optional[str] = ..., texts: _Optional[_Union[TextList, _Mapping]] = ..., tokens: _Optional[_Union[TokenList, _Mapping]] = ..., token_lists: _Optional[_Union[TokenLists, _Mapping]] = ...) -> None: ...

class TextList(_message.Message):
    __slots__ = ("values",)
    VALUES_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, values: _Optional[_Iterable[str]] = ...) -> None: ...

class TokenList(_message.Message):
    __slots__ = ("values",)
    VALUES_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, values: _Optional[_Iterable[int]] = ...) -> None: ...

class TokenLists(_message.Message):
    __slots__ = ("values",)
    VALUES_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedCompositeFieldContainer[TokenList]
    def __init__(self, values: _Optional[_Iterable[_Union[TokenList, _Mapping]]] = ...) -> None: ...

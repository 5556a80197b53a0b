from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class StampKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    STAMP_KIND_UNSPECIFIED: _ClassVar[StampKind]
    STAMP_KIND_SCIENCE: _ClassVar[StampKind]
    STAMP_KIND_TEMPLATE: _ClassVar[StampKind]
    STAMP_KIND_DIFFERENCE: _ClassVar[StampKind]

class StampFormat(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    STAMP_FORMAT_UNSPECIFIED: _ClassVar[StampFormat]
    STAMP_FORMAT_FITS: _ClassVar[StampFormat]
    STAMP_FORMAT_PNG: _ClassVar[StampFormat]
STAMP_KIND_UNSPECIFIED: StampKind
STAMP_KIND_SCIENCE: StampKind
STAMP_KIND_TEMPLATE: StampKind
STAMP_KIND_DIFFERENCE: StampKind
STAMP_FORMAT_UNSPECIFIED: StampFormat
STAMP_FORMAT_FITS: StampFormat
STAMP_FORMAT_PNG: StampFormat

class GetAvroRequest(_message.Message):
    __slots__ = ("oid", "candid")
    OID_FIELD_NUMBER: _ClassVar[int]
    CANDID_FIELD_NUMBER: _ClassVar[int]
    oid: str
    candid: int
    def __init__(self, oid: _Optional[str] = ..., candid: _Optional[int] = ...) -> None: ...

class GetAvroResponse(_message.Message):
    __slots__ = ("avro",)
    AVRO_FIELD_NUMBER: _ClassVar[int]
    avro: bytes
    def __init__(self, avro: _Optional[bytes] = ...) -> None: ...

class GetAlertRequest(_message.Message):
    __slots__ = ("oid", "candid", "fields")
    OID_FIELD_NUMBER: _ClassVar[int]
    CANDID_FIELD_NUMBER: _ClassVar[int]
    FIELDS_FIELD_NUMBER: _ClassVar[int]
    oid: str
    candid: int
    fields: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, oid: _Optional[str] = ..., candid: _Optional[int] = ..., fields: _Optional[_Iterable[str]] = ...) -> None: ...

class GetAlertResponse(_message.Message):
    __slots__ = ("alert_json",)
    ALERT_JSON_FIELD_NUMBER: _ClassVar[int]
    alert_json: str
    def __init__(self, alert_json: _Optional[str] = ...) -> None: ...

class GetStampRequest(_message.Message):
    __slots__ = ("oid", "candid", "kind", "format", "size_px", "colormap")
    OID_FIELD_NUMBER: _ClassVar[int]
    CANDID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    SIZE_PX_FIELD_NUMBER: _ClassVar[int]
    COLORMAP_FIELD_NUMBER: _ClassVar[int]
    oid: str
    candid: int
    kind: StampKind
    format: StampFormat
    size_px: int
    colormap: str
    def __init__(self, oid: _Optional[str] = ..., candid: _Optional[int] = ..., kind: _Optional[_Union[StampKind, str]] = ..., format: _Optional[_Union[StampFormat, str]] = ..., size_px: _Optional[int] = ..., colormap: _Optional[str] = ...) -> None: ...

class GetStampResponse(_message.Message):
    __slots__ = ("data", "content_type")
    DATA_FIELD_NUMBER: _ClassVar[int]
    CONTENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    content_type: str
    def __init__(self, data: _Optional[bytes] = ..., content_type: _Optional[str] = ...) -> None: ...

class ListStampsRequest(_message.Message):
    __slots__ = ("oid",)
    OID_FIELD_NUMBER: _ClassVar[int]
    oid: str
    def __init__(self, oid: _Optional[str] = ...) -> None: ...

class StampEntry(_message.Message):
    __slots__ = ("candid", "mjd", "fid", "kinds")
    CANDID_FIELD_NUMBER: _ClassVar[int]
    MJD_FIELD_NUMBER: _ClassVar[int]
    FID_FIELD_NUMBER: _ClassVar[int]
    KINDS_FIELD_NUMBER: _ClassVar[int]
    candid: int
    mjd: float
    fid: int
    kinds: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, candid: _Optional[int] = ..., mjd: _Optional[float] = ..., fid: _Optional[int] = ..., kinds: _Optional[_Iterable[str]] = ...) -> None: ...

class ListStampsResponse(_message.Message):
    __slots__ = ("stamps",)
    STAMPS_FIELD_NUMBER: _ClassVar[int]
    stamps: _containers.RepeatedCompositeFieldContainer[StampEntry]
    def __init__(self, stamps: _Optional[_Iterable[_Union[StampEntry, _Mapping]]] = ...) -> None: ...

from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TnsObject(_message.Message):
    __slots__ = ("objid", "name", "type", "redshift", "ra", "dec", "discovery_date", "reporting_group", "internal_names", "distance_arcsec")
    OBJID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    REDSHIFT_FIELD_NUMBER: _ClassVar[int]
    RA_FIELD_NUMBER: _ClassVar[int]
    DEC_FIELD_NUMBER: _ClassVar[int]
    DISCOVERY_DATE_FIELD_NUMBER: _ClassVar[int]
    REPORTING_GROUP_FIELD_NUMBER: _ClassVar[int]
    INTERNAL_NAMES_FIELD_NUMBER: _ClassVar[int]
    DISTANCE_ARCSEC_FIELD_NUMBER: _ClassVar[int]
    objid: int
    name: str
    type: str
    redshift: float
    ra: float
    dec: float
    discovery_date: str
    reporting_group: str
    internal_names: str
    distance_arcsec: float
    def __init__(self, objid: _Optional[int] = ..., name: _Optional[str] = ..., type: _Optional[str] = ..., redshift: _Optional[float] = ..., ra: _Optional[float] = ..., dec: _Optional[float] = ..., discovery_date: _Optional[str] = ..., reporting_group: _Optional[str] = ..., internal_names: _Optional[str] = ..., distance_arcsec: _Optional[float] = ...) -> None: ...

class SearchRequest(_message.Message):
    __slots__ = ("ra", "dec", "radius_arcsec", "limit")
    RA_FIELD_NUMBER: _ClassVar[int]
    DEC_FIELD_NUMBER: _ClassVar[int]
    RADIUS_ARCSEC_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    ra: float
    dec: float
    radius_arcsec: float
    limit: int
    def __init__(self, ra: _Optional[float] = ..., dec: _Optional[float] = ..., radius_arcsec: _Optional[float] = ..., limit: _Optional[int] = ...) -> None: ...

class SearchResponse(_message.Message):
    __slots__ = ("objects", "snapshot_objects")
    OBJECTS_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_OBJECTS_FIELD_NUMBER: _ClassVar[int]
    objects: _containers.RepeatedCompositeFieldContainer[TnsObject]
    snapshot_objects: int
    def __init__(self, objects: _Optional[_Iterable[_Union[TnsObject, _Mapping]]] = ..., snapshot_objects: _Optional[int] = ...) -> None: ...

class ByNameRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class ByNameResponse(_message.Message):
    __slots__ = ("object",)
    OBJECT_FIELD_NUMBER: _ClassVar[int]
    object: TnsObject
    def __init__(self, object: _Optional[_Union[TnsObject, _Mapping]] = ...) -> None: ...

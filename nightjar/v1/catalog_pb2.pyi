from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Source(_message.Message):
    __slots__ = ("catalog", "source_id", "ra", "dec", "distance_arcsec", "columns")
    CATALOG_FIELD_NUMBER: _ClassVar[int]
    SOURCE_ID_FIELD_NUMBER: _ClassVar[int]
    RA_FIELD_NUMBER: _ClassVar[int]
    DEC_FIELD_NUMBER: _ClassVar[int]
    DISTANCE_ARCSEC_FIELD_NUMBER: _ClassVar[int]
    COLUMNS_FIELD_NUMBER: _ClassVar[int]
    catalog: str
    source_id: str
    ra: float
    dec: float
    distance_arcsec: float
    columns: _struct_pb2.Struct
    def __init__(self, catalog: _Optional[str] = ..., source_id: _Optional[str] = ..., ra: _Optional[float] = ..., dec: _Optional[float] = ..., distance_arcsec: _Optional[float] = ..., columns: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class ConeSearchRequest(_message.Message):
    __slots__ = ("catalog", "ra", "dec", "radius_arcsec", "limit")
    CATALOG_FIELD_NUMBER: _ClassVar[int]
    RA_FIELD_NUMBER: _ClassVar[int]
    DEC_FIELD_NUMBER: _ClassVar[int]
    RADIUS_ARCSEC_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    catalog: str
    ra: float
    dec: float
    radius_arcsec: float
    limit: int
    def __init__(self, catalog: _Optional[str] = ..., ra: _Optional[float] = ..., dec: _Optional[float] = ..., radius_arcsec: _Optional[float] = ..., limit: _Optional[int] = ...) -> None: ...

class ConeSearchResponse(_message.Message):
    __slots__ = ("sources",)
    SOURCES_FIELD_NUMBER: _ClassVar[int]
    sources: _containers.RepeatedCompositeFieldContainer[Source]
    def __init__(self, sources: _Optional[_Iterable[_Union[Source, _Mapping]]] = ...) -> None: ...

class ConeSearchAllRequest(_message.Message):
    __slots__ = ("ra", "dec", "radius_arcsec", "limit_per_catalog")
    RA_FIELD_NUMBER: _ClassVar[int]
    DEC_FIELD_NUMBER: _ClassVar[int]
    RADIUS_ARCSEC_FIELD_NUMBER: _ClassVar[int]
    LIMIT_PER_CATALOG_FIELD_NUMBER: _ClassVar[int]
    ra: float
    dec: float
    radius_arcsec: float
    limit_per_catalog: int
    def __init__(self, ra: _Optional[float] = ..., dec: _Optional[float] = ..., radius_arcsec: _Optional[float] = ..., limit_per_catalog: _Optional[int] = ...) -> None: ...

class CatalogSources(_message.Message):
    __slots__ = ("catalog", "sources", "truncated")
    CATALOG_FIELD_NUMBER: _ClassVar[int]
    SOURCES_FIELD_NUMBER: _ClassVar[int]
    TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    catalog: str
    sources: _containers.RepeatedCompositeFieldContainer[Source]
    truncated: bool
    def __init__(self, catalog: _Optional[str] = ..., sources: _Optional[_Iterable[_Union[Source, _Mapping]]] = ..., truncated: _Optional[bool] = ...) -> None: ...

class ConeSearchAllResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[CatalogSources]
    def __init__(self, results: _Optional[_Iterable[_Union[CatalogSources, _Mapping]]] = ...) -> None: ...

class CrossmatchRequest(_message.Message):
    __slots__ = ("catalogs", "ra", "dec", "radius_arcsec")
    CATALOGS_FIELD_NUMBER: _ClassVar[int]
    RA_FIELD_NUMBER: _ClassVar[int]
    DEC_FIELD_NUMBER: _ClassVar[int]
    RADIUS_ARCSEC_FIELD_NUMBER: _ClassVar[int]
    catalogs: _containers.RepeatedScalarFieldContainer[str]
    ra: float
    dec: float
    radius_arcsec: float
    def __init__(self, catalogs: _Optional[_Iterable[str]] = ..., ra: _Optional[float] = ..., dec: _Optional[float] = ..., radius_arcsec: _Optional[float] = ...) -> None: ...

class CrossmatchResponse(_message.Message):
    __slots__ = ("matches",)
    MATCHES_FIELD_NUMBER: _ClassVar[int]
    matches: _containers.RepeatedCompositeFieldContainer[Source]
    def __init__(self, matches: _Optional[_Iterable[_Union[Source, _Mapping]]] = ...) -> None: ...

class ListCatalogsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Column(_message.Message):
    __slots__ = ("name", "unit", "type")
    NAME_FIELD_NUMBER: _ClassVar[int]
    UNIT_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    name: str
    unit: str
    type: str
    def __init__(self, name: _Optional[str] = ..., unit: _Optional[str] = ..., type: _Optional[str] = ...) -> None: ...

class Catalog(_message.Message):
    __slots__ = ("name", "columns", "row_count", "default_radius_arcsec", "source", "healpix_order")
    NAME_FIELD_NUMBER: _ClassVar[int]
    COLUMNS_FIELD_NUMBER: _ClassVar[int]
    ROW_COUNT_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_RADIUS_ARCSEC_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    HEALPIX_ORDER_FIELD_NUMBER: _ClassVar[int]
    name: str
    columns: _containers.RepeatedCompositeFieldContainer[Column]
    row_count: int
    default_radius_arcsec: float
    source: str
    healpix_order: int
    def __init__(self, name: _Optional[str] = ..., columns: _Optional[_Iterable[_Union[Column, _Mapping]]] = ..., row_count: _Optional[int] = ..., default_radius_arcsec: _Optional[float] = ..., source: _Optional[str] = ..., healpix_order: _Optional[int] = ...) -> None: ...

class ListCatalogsResponse(_message.Message):
    __slots__ = ("catalogs",)
    CATALOGS_FIELD_NUMBER: _ClassVar[int]
    catalogs: _containers.RepeatedCompositeFieldContainer[Catalog]
    def __init__(self, catalogs: _Optional[_Iterable[_Union[Catalog, _Mapping]]] = ...) -> None: ...

from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PageSize(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PAGE_SIZE_UNSPECIFIED: _ClassVar[PageSize]
    PAGE_SIZE_A4: _ClassVar[PageSize]
    PAGE_SIZE_LETTER: _ClassVar[PageSize]
PAGE_SIZE_UNSPECIFIED: PageSize
PAGE_SIZE_A4: PageSize
PAGE_SIZE_LETTER: PageSize

class GetFindingChartRequest(_message.Message):
    __slots__ = ("oid", "candid", "page_size", "field_arcmin")
    OID_FIELD_NUMBER: _ClassVar[int]
    CANDID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    FIELD_ARCMIN_FIELD_NUMBER: _ClassVar[int]
    oid: str
    candid: int
    page_size: PageSize
    field_arcmin: float
    def __init__(self, oid: _Optional[str] = ..., candid: _Optional[int] = ..., page_size: _Optional[_Union[PageSize, str]] = ..., field_arcmin: _Optional[float] = ...) -> None: ...

class GetFindingChartResponse(_message.Message):
    __slots__ = ("pdf", "reference_image")
    PDF_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_IMAGE_FIELD_NUMBER: _ClassVar[int]
    pdf: bytes
    reference_image: str
    def __init__(self, pdf: _Optional[bytes] = ..., reference_image: _Optional[str] = ...) -> None: ...

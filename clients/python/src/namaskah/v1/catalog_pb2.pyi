import datetime

from google.api import annotations_pb2 as _annotations_pb2
from google.api import field_behavior_pb2 as _field_behavior_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from namaskah.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Availability(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    AVAILABILITY_UNSPECIFIED: _ClassVar[Availability]
    AVAILABILITY_AVAILABLE: _ClassVar[Availability]
    AVAILABILITY_LOW: _ClassVar[Availability]
    AVAILABILITY_UNAVAILABLE: _ClassVar[Availability]
AVAILABILITY_UNSPECIFIED: Availability
AVAILABILITY_AVAILABLE: Availability
AVAILABILITY_LOW: Availability
AVAILABILITY_UNAVAILABLE: Availability

class Service(_message.Message):
    __slots__ = ("name", "code", "display_name", "price", "price_country", "availability", "country_count", "success_rate", "recent_verification_count")
    NAME_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    PRICE_FIELD_NUMBER: _ClassVar[int]
    PRICE_COUNTRY_FIELD_NUMBER: _ClassVar[int]
    AVAILABILITY_FIELD_NUMBER: _ClassVar[int]
    COUNTRY_COUNT_FIELD_NUMBER: _ClassVar[int]
    SUCCESS_RATE_FIELD_NUMBER: _ClassVar[int]
    RECENT_VERIFICATION_COUNT_FIELD_NUMBER: _ClassVar[int]
    name: str
    code: str
    display_name: str
    price: _common_pb2.Money
    price_country: str
    availability: Availability
    country_count: int
    success_rate: float
    recent_verification_count: int
    def __init__(self, name: _Optional[str] = ..., code: _Optional[str] = ..., display_name: _Optional[str] = ..., price: _Optional[_Union[_common_pb2.Money, _Mapping]] = ..., price_country: _Optional[str] = ..., availability: _Optional[_Union[Availability, str]] = ..., country_count: _Optional[int] = ..., success_rate: _Optional[float] = ..., recent_verification_count: _Optional[int] = ...) -> None: ...

class Country(_message.Message):
    __slots__ = ("name", "code", "display_name", "calling_code", "price", "availability", "service_count")
    NAME_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    CALLING_CODE_FIELD_NUMBER: _ClassVar[int]
    PRICE_FIELD_NUMBER: _ClassVar[int]
    AVAILABILITY_FIELD_NUMBER: _ClassVar[int]
    SERVICE_COUNT_FIELD_NUMBER: _ClassVar[int]
    name: str
    code: str
    display_name: str
    calling_code: str
    price: _common_pb2.Money
    availability: Availability
    service_count: int
    def __init__(self, name: _Optional[str] = ..., code: _Optional[str] = ..., display_name: _Optional[str] = ..., calling_code: _Optional[str] = ..., price: _Optional[_Union[_common_pb2.Money, _Mapping]] = ..., availability: _Optional[_Union[Availability, str]] = ..., service_count: _Optional[int] = ...) -> None: ...

class Price(_message.Message):
    __slots__ = ("name", "service", "country", "price", "list_price", "plan", "discount_basis_points", "availability", "available_numbers", "success_rate", "recent_verification_count", "update_time")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    COUNTRY_FIELD_NUMBER: _ClassVar[int]
    PRICE_FIELD_NUMBER: _ClassVar[int]
    LIST_PRICE_FIELD_NUMBER: _ClassVar[int]
    PLAN_FIELD_NUMBER: _ClassVar[int]
    DISCOUNT_BASIS_POINTS_FIELD_NUMBER: _ClassVar[int]
    AVAILABILITY_FIELD_NUMBER: _ClassVar[int]
    AVAILABLE_NUMBERS_FIELD_NUMBER: _ClassVar[int]
    SUCCESS_RATE_FIELD_NUMBER: _ClassVar[int]
    RECENT_VERIFICATION_COUNT_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    name: str
    service: str
    country: str
    price: _common_pb2.Money
    list_price: _common_pb2.Money
    plan: _common_pb2.PlanTier
    discount_basis_points: int
    availability: Availability
    available_numbers: int
    success_rate: float
    recent_verification_count: int
    update_time: _timestamp_pb2.Timestamp
    def __init__(self, name: _Optional[str] = ..., service: _Optional[str] = ..., country: _Optional[str] = ..., price: _Optional[_Union[_common_pb2.Money, _Mapping]] = ..., list_price: _Optional[_Union[_common_pb2.Money, _Mapping]] = ..., plan: _Optional[_Union[_common_pb2.PlanTier, str]] = ..., discount_basis_points: _Optional[int] = ..., availability: _Optional[_Union[Availability, str]] = ..., available_numbers: _Optional[int] = ..., success_rate: _Optional[float] = ..., recent_verification_count: _Optional[int] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListServicesRequest(_message.Message):
    __slots__ = ("country", "page_size", "page_token", "available_only")
    COUNTRY_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    AVAILABLE_ONLY_FIELD_NUMBER: _ClassVar[int]
    country: str
    page_size: int
    page_token: str
    available_only: bool
    def __init__(self, country: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., available_only: _Optional[bool] = ...) -> None: ...

class ListServicesResponse(_message.Message):
    __slots__ = ("services", "next_page_token")
    SERVICES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    services: _containers.RepeatedCompositeFieldContainer[Service]
    next_page_token: str
    def __init__(self, services: _Optional[_Iterable[_Union[Service, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ListCountriesRequest(_message.Message):
    __slots__ = ("service", "page_size", "page_token", "available_only")
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    AVAILABLE_ONLY_FIELD_NUMBER: _ClassVar[int]
    service: str
    page_size: int
    page_token: str
    available_only: bool
    def __init__(self, service: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., available_only: _Optional[bool] = ...) -> None: ...

class ListCountriesResponse(_message.Message):
    __slots__ = ("countries", "next_page_token")
    COUNTRIES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    countries: _containers.RepeatedCompositeFieldContainer[Country]
    next_page_token: str
    def __init__(self, countries: _Optional[_Iterable[_Union[Country, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GetPriceRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class GetPriceResponse(_message.Message):
    __slots__ = ("price",)
    PRICE_FIELD_NUMBER: _ClassVar[int]
    price: Price
    def __init__(self, price: _Optional[_Union[Price, _Mapping]] = ...) -> None: ...

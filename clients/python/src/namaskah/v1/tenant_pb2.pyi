import datetime

from google.api import annotations_pb2 as _annotations_pb2
from google.api import field_behavior_pb2 as _field_behavior_pb2
from google.protobuf import field_mask_pb2 as _field_mask_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from namaskah.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TenantState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TENANT_STATE_UNSPECIFIED: _ClassVar[TenantState]
    TENANT_STATE_ACTIVE: _ClassVar[TenantState]
    TENANT_STATE_SUSPENDED: _ClassVar[TenantState]

class TenantPriceSource(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TENANT_PRICE_SOURCE_UNSPECIFIED: _ClassVar[TenantPriceSource]
    TENANT_PRICE_SOURCE_MARKUP: _ClassVar[TenantPriceSource]
    TENANT_PRICE_SOURCE_FIXED: _ClassVar[TenantPriceSource]
TENANT_STATE_UNSPECIFIED: TenantState
TENANT_STATE_ACTIVE: TenantState
TENANT_STATE_SUSPENDED: TenantState
TENANT_PRICE_SOURCE_UNSPECIFIED: TenantPriceSource
TENANT_PRICE_SOURCE_MARKUP: TenantPriceSource
TENANT_PRICE_SOURCE_FIXED: TenantPriceSource

class Branding(_message.Message):
    __slots__ = ("display_name", "logo_uri", "favicon_uri", "primary_color", "accent_color", "support_email", "mail_sender_name", "website_uri")
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    LOGO_URI_FIELD_NUMBER: _ClassVar[int]
    FAVICON_URI_FIELD_NUMBER: _ClassVar[int]
    PRIMARY_COLOR_FIELD_NUMBER: _ClassVar[int]
    ACCENT_COLOR_FIELD_NUMBER: _ClassVar[int]
    SUPPORT_EMAIL_FIELD_NUMBER: _ClassVar[int]
    MAIL_SENDER_NAME_FIELD_NUMBER: _ClassVar[int]
    WEBSITE_URI_FIELD_NUMBER: _ClassVar[int]
    display_name: str
    logo_uri: str
    favicon_uri: str
    primary_color: str
    accent_color: str
    support_email: str
    mail_sender_name: str
    website_uri: str
    def __init__(self, display_name: _Optional[str] = ..., logo_uri: _Optional[str] = ..., favicon_uri: _Optional[str] = ..., primary_color: _Optional[str] = ..., accent_color: _Optional[str] = ..., support_email: _Optional[str] = ..., mail_sender_name: _Optional[str] = ..., website_uri: _Optional[str] = ...) -> None: ...

class Tenant(_message.Message):
    __slots__ = ("name", "display_name", "owner", "state", "hosts", "branding", "markup_basis_points", "margin_earned", "customer_count", "create_time", "update_time", "suspend_time", "suspend_reason")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    HOSTS_FIELD_NUMBER: _ClassVar[int]
    BRANDING_FIELD_NUMBER: _ClassVar[int]
    MARKUP_BASIS_POINTS_FIELD_NUMBER: _ClassVar[int]
    MARGIN_EARNED_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_COUNT_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    SUSPEND_TIME_FIELD_NUMBER: _ClassVar[int]
    SUSPEND_REASON_FIELD_NUMBER: _ClassVar[int]
    name: str
    display_name: str
    owner: str
    state: TenantState
    hosts: _containers.RepeatedScalarFieldContainer[str]
    branding: Branding
    markup_basis_points: int
    margin_earned: _common_pb2.Money
    customer_count: int
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    suspend_time: _timestamp_pb2.Timestamp
    suspend_reason: str
    def __init__(self, name: _Optional[str] = ..., display_name: _Optional[str] = ..., owner: _Optional[str] = ..., state: _Optional[_Union[TenantState, str]] = ..., hosts: _Optional[_Iterable[str]] = ..., branding: _Optional[_Union[Branding, _Mapping]] = ..., markup_basis_points: _Optional[int] = ..., margin_earned: _Optional[_Union[_common_pb2.Money, _Mapping]] = ..., customer_count: _Optional[int] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., suspend_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., suspend_reason: _Optional[str] = ...) -> None: ...

class TenantPrice(_message.Message):
    __slots__ = ("name", "service", "country", "price", "base_price", "margin", "source", "update_time")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    COUNTRY_FIELD_NUMBER: _ClassVar[int]
    PRICE_FIELD_NUMBER: _ClassVar[int]
    BASE_PRICE_FIELD_NUMBER: _ClassVar[int]
    MARGIN_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    name: str
    service: str
    country: str
    price: _common_pb2.Money
    base_price: _common_pb2.Money
    margin: _common_pb2.Money
    source: TenantPriceSource
    update_time: _timestamp_pb2.Timestamp
    def __init__(self, name: _Optional[str] = ..., service: _Optional[str] = ..., country: _Optional[str] = ..., price: _Optional[_Union[_common_pb2.Money, _Mapping]] = ..., base_price: _Optional[_Union[_common_pb2.Money, _Mapping]] = ..., margin: _Optional[_Union[_common_pb2.Money, _Mapping]] = ..., source: _Optional[_Union[TenantPriceSource, str]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CreateTenantRequest(_message.Message):
    __slots__ = ("tenant_id", "tenant", "request_id")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    tenant: Tenant
    request_id: str
    def __init__(self, tenant_id: _Optional[str] = ..., tenant: _Optional[_Union[Tenant, _Mapping]] = ..., request_id: _Optional[str] = ...) -> None: ...

class CreateTenantResponse(_message.Message):
    __slots__ = ("tenant",)
    TENANT_FIELD_NUMBER: _ClassVar[int]
    tenant: Tenant
    def __init__(self, tenant: _Optional[_Union[Tenant, _Mapping]] = ...) -> None: ...

class GetTenantRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class GetTenantResponse(_message.Message):
    __slots__ = ("tenant",)
    TENANT_FIELD_NUMBER: _ClassVar[int]
    tenant: Tenant
    def __init__(self, tenant: _Optional[_Union[Tenant, _Mapping]] = ...) -> None: ...

class ListTenantsRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "state", "owner")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    state: TenantState
    owner: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., state: _Optional[_Union[TenantState, str]] = ..., owner: _Optional[str] = ...) -> None: ...

class ListTenantsResponse(_message.Message):
    __slots__ = ("tenants", "next_page_token")
    TENANTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    tenants: _containers.RepeatedCompositeFieldContainer[Tenant]
    next_page_token: str
    def __init__(self, tenants: _Optional[_Iterable[_Union[Tenant, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class UpdateTenantRequest(_message.Message):
    __slots__ = ("tenant", "update_mask")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    tenant: Tenant
    update_mask: _field_mask_pb2.FieldMask
    def __init__(self, tenant: _Optional[_Union[Tenant, _Mapping]] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ...) -> None: ...

class UpdateTenantResponse(_message.Message):
    __slots__ = ("tenant",)
    TENANT_FIELD_NUMBER: _ClassVar[int]
    tenant: Tenant
    def __init__(self, tenant: _Optional[_Union[Tenant, _Mapping]] = ...) -> None: ...

class SuspendTenantRequest(_message.Message):
    __slots__ = ("name", "reason")
    NAME_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    name: str
    reason: str
    def __init__(self, name: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class SuspendTenantResponse(_message.Message):
    __slots__ = ("tenant",)
    TENANT_FIELD_NUMBER: _ClassVar[int]
    tenant: Tenant
    def __init__(self, tenant: _Optional[_Union[Tenant, _Mapping]] = ...) -> None: ...

class ReactivateTenantRequest(_message.Message):
    __slots__ = ("name", "reason")
    NAME_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    name: str
    reason: str
    def __init__(self, name: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class ReactivateTenantResponse(_message.Message):
    __slots__ = ("tenant",)
    TENANT_FIELD_NUMBER: _ClassVar[int]
    tenant: Tenant
    def __init__(self, tenant: _Optional[_Union[Tenant, _Mapping]] = ...) -> None: ...

class GetBrandingRequest(_message.Message):
    __slots__ = ("host",)
    HOST_FIELD_NUMBER: _ClassVar[int]
    host: str
    def __init__(self, host: _Optional[str] = ...) -> None: ...

class GetBrandingResponse(_message.Message):
    __slots__ = ("branding", "tenant")
    BRANDING_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    branding: Branding
    tenant: str
    def __init__(self, branding: _Optional[_Union[Branding, _Mapping]] = ..., tenant: _Optional[str] = ...) -> None: ...

class ListTenantPricesRequest(_message.Message):
    __slots__ = ("parent", "page_size", "page_token", "service", "country", "fixed_only")
    PARENT_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    COUNTRY_FIELD_NUMBER: _ClassVar[int]
    FIXED_ONLY_FIELD_NUMBER: _ClassVar[int]
    parent: str
    page_size: int
    page_token: str
    service: str
    country: str
    fixed_only: bool
    def __init__(self, parent: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., service: _Optional[str] = ..., country: _Optional[str] = ..., fixed_only: _Optional[bool] = ...) -> None: ...

class ListTenantPricesResponse(_message.Message):
    __slots__ = ("prices", "next_page_token")
    PRICES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    prices: _containers.RepeatedCompositeFieldContainer[TenantPrice]
    next_page_token: str
    def __init__(self, prices: _Optional[_Iterable[_Union[TenantPrice, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class SetTenantPriceRequest(_message.Message):
    __slots__ = ("name", "fixed_price")
    NAME_FIELD_NUMBER: _ClassVar[int]
    FIXED_PRICE_FIELD_NUMBER: _ClassVar[int]
    name: str
    fixed_price: _common_pb2.Money
    def __init__(self, name: _Optional[str] = ..., fixed_price: _Optional[_Union[_common_pb2.Money, _Mapping]] = ...) -> None: ...

class SetTenantPriceResponse(_message.Message):
    __slots__ = ("price",)
    PRICE_FIELD_NUMBER: _ClassVar[int]
    price: TenantPrice
    def __init__(self, price: _Optional[_Union[TenantPrice, _Mapping]] = ...) -> None: ...

import datetime

from google.api import field_behavior_pb2 as _field_behavior_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class WebhookSource(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    WEBHOOK_SOURCE_UNSPECIFIED: _ClassVar[WebhookSource]
    WEBHOOK_SOURCE_PAYSTACK: _ClassVar[WebhookSource]
    WEBHOOK_SOURCE_TEXTVERIFIED: _ClassVar[WebhookSource]
    WEBHOOK_SOURCE_SANDBOX: _ClassVar[WebhookSource]
WEBHOOK_SOURCE_UNSPECIFIED: WebhookSource
WEBHOOK_SOURCE_PAYSTACK: WebhookSource
WEBHOOK_SOURCE_TEXTVERIFIED: WebhookSource
WEBHOOK_SOURCE_SANDBOX: WebhookSource

class WebhookHeader(_message.Message):
    __slots__ = ("name", "value")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    name: str
    value: bytes
    def __init__(self, name: _Optional[str] = ..., value: _Optional[bytes] = ...) -> None: ...

class ReceiveWebhookRequest(_message.Message):
    __slots__ = ("source", "headers", "body", "query", "client_address", "receive_time")
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    HEADERS_FIELD_NUMBER: _ClassVar[int]
    BODY_FIELD_NUMBER: _ClassVar[int]
    QUERY_FIELD_NUMBER: _ClassVar[int]
    CLIENT_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    RECEIVE_TIME_FIELD_NUMBER: _ClassVar[int]
    source: WebhookSource
    headers: _containers.RepeatedCompositeFieldContainer[WebhookHeader]
    body: bytes
    query: str
    client_address: str
    receive_time: _timestamp_pb2.Timestamp
    def __init__(self, source: _Optional[_Union[WebhookSource, str]] = ..., headers: _Optional[_Iterable[_Union[WebhookHeader, _Mapping]]] = ..., body: _Optional[bytes] = ..., query: _Optional[str] = ..., client_address: _Optional[str] = ..., receive_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ReceiveWebhookResponse(_message.Message):
    __slots__ = ("accepted", "related_resource")
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    RELATED_RESOURCE_FIELD_NUMBER: _ClassVar[int]
    accepted: bool
    related_resource: str
    def __init__(self, accepted: _Optional[bool] = ..., related_resource: _Optional[str] = ...) -> None: ...

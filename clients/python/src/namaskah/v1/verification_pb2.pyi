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

class VerificationStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    VERIFICATION_STATUS_UNSPECIFIED: _ClassVar[VerificationStatus]
    VERIFICATION_STATUS_PENDING: _ClassVar[VerificationStatus]
    VERIFICATION_STATUS_ACTIVE: _ClassVar[VerificationStatus]
    VERIFICATION_STATUS_COMPLETED: _ClassVar[VerificationStatus]
    VERIFICATION_STATUS_CANCELLED: _ClassVar[VerificationStatus]
    VERIFICATION_STATUS_EXPIRED: _ClassVar[VerificationStatus]
    VERIFICATION_STATUS_FAILED: _ClassVar[VerificationStatus]

class ChargeState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CHARGE_STATE_UNSPECIFIED: _ClassVar[ChargeState]
    CHARGE_STATE_HELD: _ClassVar[ChargeState]
    CHARGE_STATE_CAPTURED: _ClassVar[ChargeState]
    CHARGE_STATE_REFUNDED: _ClassVar[ChargeState]

class RefundReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    REFUND_REASON_UNSPECIFIED: _ClassVar[RefundReason]
    REFUND_REASON_CANCELLED: _ClassVar[RefundReason]
    REFUND_REASON_EXPIRED: _ClassVar[RefundReason]
    REFUND_REASON_FAILED: _ClassVar[RefundReason]
    REFUND_REASON_MANUAL: _ClassVar[RefundReason]

class VerificationEventType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    VERIFICATION_EVENT_TYPE_UNSPECIFIED: _ClassVar[VerificationEventType]
    VERIFICATION_EVENT_TYPE_SNAPSHOT: _ClassVar[VerificationEventType]
    VERIFICATION_EVENT_TYPE_CREATED: _ClassVar[VerificationEventType]
    VERIFICATION_EVENT_TYPE_NUMBER_ASSIGNED: _ClassVar[VerificationEventType]
    VERIFICATION_EVENT_TYPE_SMS_RECEIVED: _ClassVar[VerificationEventType]
    VERIFICATION_EVENT_TYPE_COMPLETED: _ClassVar[VerificationEventType]
    VERIFICATION_EVENT_TYPE_CANCELLED: _ClassVar[VerificationEventType]
    VERIFICATION_EVENT_TYPE_EXPIRED: _ClassVar[VerificationEventType]
    VERIFICATION_EVENT_TYPE_FAILED: _ClassVar[VerificationEventType]
    VERIFICATION_EVENT_TYPE_REFUNDED: _ClassVar[VerificationEventType]
VERIFICATION_STATUS_UNSPECIFIED: VerificationStatus
VERIFICATION_STATUS_PENDING: VerificationStatus
VERIFICATION_STATUS_ACTIVE: VerificationStatus
VERIFICATION_STATUS_COMPLETED: VerificationStatus
VERIFICATION_STATUS_CANCELLED: VerificationStatus
VERIFICATION_STATUS_EXPIRED: VerificationStatus
VERIFICATION_STATUS_FAILED: VerificationStatus
CHARGE_STATE_UNSPECIFIED: ChargeState
CHARGE_STATE_HELD: ChargeState
CHARGE_STATE_CAPTURED: ChargeState
CHARGE_STATE_REFUNDED: ChargeState
REFUND_REASON_UNSPECIFIED: RefundReason
REFUND_REASON_CANCELLED: RefundReason
REFUND_REASON_EXPIRED: RefundReason
REFUND_REASON_FAILED: RefundReason
REFUND_REASON_MANUAL: RefundReason
VERIFICATION_EVENT_TYPE_UNSPECIFIED: VerificationEventType
VERIFICATION_EVENT_TYPE_SNAPSHOT: VerificationEventType
VERIFICATION_EVENT_TYPE_CREATED: VerificationEventType
VERIFICATION_EVENT_TYPE_NUMBER_ASSIGNED: VerificationEventType
VERIFICATION_EVENT_TYPE_SMS_RECEIVED: VerificationEventType
VERIFICATION_EVENT_TYPE_COMPLETED: VerificationEventType
VERIFICATION_EVENT_TYPE_CANCELLED: VerificationEventType
VERIFICATION_EVENT_TYPE_EXPIRED: VerificationEventType
VERIFICATION_EVENT_TYPE_FAILED: VerificationEventType
VERIFICATION_EVENT_TYPE_REFUNDED: VerificationEventType

class Verification(_message.Message):
    __slots__ = ("name", "service", "country", "status", "phone_number", "price", "charge_state", "code", "messages", "refund", "failure_reason", "create_time", "update_time", "expire_time", "end_time", "last_sequence", "request_id")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    COUNTRY_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    PHONE_NUMBER_FIELD_NUMBER: _ClassVar[int]
    PRICE_FIELD_NUMBER: _ClassVar[int]
    CHARGE_STATE_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    REFUND_FIELD_NUMBER: _ClassVar[int]
    FAILURE_REASON_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    LAST_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    name: str
    service: str
    country: str
    status: VerificationStatus
    phone_number: str
    price: _common_pb2.Money
    charge_state: ChargeState
    code: str
    messages: _containers.RepeatedCompositeFieldContainer[SmsMessage]
    refund: VerificationRefund
    failure_reason: str
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    expire_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    last_sequence: int
    request_id: str
    def __init__(self, name: _Optional[str] = ..., service: _Optional[str] = ..., country: _Optional[str] = ..., status: _Optional[_Union[VerificationStatus, str]] = ..., phone_number: _Optional[str] = ..., price: _Optional[_Union[_common_pb2.Money, _Mapping]] = ..., charge_state: _Optional[_Union[ChargeState, str]] = ..., code: _Optional[str] = ..., messages: _Optional[_Iterable[_Union[SmsMessage, _Mapping]]] = ..., refund: _Optional[_Union[VerificationRefund, _Mapping]] = ..., failure_reason: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., expire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_sequence: _Optional[int] = ..., request_id: _Optional[str] = ...) -> None: ...

class SmsMessage(_message.Message):
    __slots__ = ("name", "sender", "text", "code", "receive_time", "after_refund")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SENDER_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    RECEIVE_TIME_FIELD_NUMBER: _ClassVar[int]
    AFTER_REFUND_FIELD_NUMBER: _ClassVar[int]
    name: str
    sender: str
    text: str
    code: str
    receive_time: _timestamp_pb2.Timestamp
    after_refund: bool
    def __init__(self, name: _Optional[str] = ..., sender: _Optional[str] = ..., text: _Optional[str] = ..., code: _Optional[str] = ..., receive_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., after_refund: _Optional[bool] = ...) -> None: ...

class VerificationRefund(_message.Message):
    __slots__ = ("amount", "reason", "refund_time", "transaction", "note")
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    REFUND_TIME_FIELD_NUMBER: _ClassVar[int]
    TRANSACTION_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    amount: _common_pb2.Money
    reason: RefundReason
    refund_time: _timestamp_pb2.Timestamp
    transaction: str
    note: str
    def __init__(self, amount: _Optional[_Union[_common_pb2.Money, _Mapping]] = ..., reason: _Optional[_Union[RefundReason, str]] = ..., refund_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., transaction: _Optional[str] = ..., note: _Optional[str] = ...) -> None: ...

class VerificationEvent(_message.Message):
    __slots__ = ("sequence", "type", "create_time", "verification", "message")
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    VERIFICATION_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    sequence: int
    type: VerificationEventType
    create_time: _timestamp_pb2.Timestamp
    verification: Verification
    message: SmsMessage
    def __init__(self, sequence: _Optional[int] = ..., type: _Optional[_Union[VerificationEventType, str]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., verification: _Optional[_Union[Verification, _Mapping]] = ..., message: _Optional[_Union[SmsMessage, _Mapping]] = ...) -> None: ...

class CreateVerificationRequest(_message.Message):
    __slots__ = ("service", "country", "max_price", "request_id")
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    COUNTRY_FIELD_NUMBER: _ClassVar[int]
    MAX_PRICE_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    service: str
    country: str
    max_price: _common_pb2.Money
    request_id: str
    def __init__(self, service: _Optional[str] = ..., country: _Optional[str] = ..., max_price: _Optional[_Union[_common_pb2.Money, _Mapping]] = ..., request_id: _Optional[str] = ...) -> None: ...

class CreateVerificationResponse(_message.Message):
    __slots__ = ("verification",)
    VERIFICATION_FIELD_NUMBER: _ClassVar[int]
    verification: Verification
    def __init__(self, verification: _Optional[_Union[Verification, _Mapping]] = ...) -> None: ...

class GetVerificationRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class GetVerificationResponse(_message.Message):
    __slots__ = ("verification",)
    VERIFICATION_FIELD_NUMBER: _ClassVar[int]
    verification: Verification
    def __init__(self, verification: _Optional[_Union[Verification, _Mapping]] = ...) -> None: ...

class ListVerificationsRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "statuses", "service", "country")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    STATUSES_FIELD_NUMBER: _ClassVar[int]
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    COUNTRY_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    statuses: _containers.RepeatedScalarFieldContainer[VerificationStatus]
    service: str
    country: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., statuses: _Optional[_Iterable[_Union[VerificationStatus, str]]] = ..., service: _Optional[str] = ..., country: _Optional[str] = ...) -> None: ...

class ListVerificationsResponse(_message.Message):
    __slots__ = ("verifications", "next_page_token")
    VERIFICATIONS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    verifications: _containers.RepeatedCompositeFieldContainer[Verification]
    next_page_token: str
    def __init__(self, verifications: _Optional[_Iterable[_Union[Verification, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class CancelVerificationRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class CancelVerificationResponse(_message.Message):
    __slots__ = ("verification",)
    VERIFICATION_FIELD_NUMBER: _ClassVar[int]
    verification: Verification
    def __init__(self, verification: _Optional[_Union[Verification, _Mapping]] = ...) -> None: ...

class WatchVerificationRequest(_message.Message):
    __slots__ = ("name", "after_sequence")
    NAME_FIELD_NUMBER: _ClassVar[int]
    AFTER_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    name: str
    after_sequence: int
    def __init__(self, name: _Optional[str] = ..., after_sequence: _Optional[int] = ...) -> None: ...

class WatchVerificationResponse(_message.Message):
    __slots__ = ("event",)
    EVENT_FIELD_NUMBER: _ClassVar[int]
    event: VerificationEvent
    def __init__(self, event: _Optional[_Union[VerificationEvent, _Mapping]] = ...) -> None: ...

class WatchVerificationsRequest(_message.Message):
    __slots__ = ("include_snapshots",)
    INCLUDE_SNAPSHOTS_FIELD_NUMBER: _ClassVar[int]
    include_snapshots: bool
    def __init__(self, include_snapshots: _Optional[bool] = ...) -> None: ...

class WatchVerificationsResponse(_message.Message):
    __slots__ = ("event",)
    EVENT_FIELD_NUMBER: _ClassVar[int]
    event: VerificationEvent
    def __init__(self, event: _Optional[_Union[VerificationEvent, _Mapping]] = ...) -> None: ...

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

class TransactionKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TRANSACTION_KIND_UNSPECIFIED: _ClassVar[TransactionKind]
    TRANSACTION_KIND_TOP_UP: _ClassVar[TransactionKind]
    TRANSACTION_KIND_VERIFICATION_HOLD: _ClassVar[TransactionKind]
    TRANSACTION_KIND_VERIFICATION_REFUND: _ClassVar[TransactionKind]
    TRANSACTION_KIND_SUBSCRIPTION_FEE: _ClassVar[TransactionKind]
    TRANSACTION_KIND_OVERAGE_CHARGE: _ClassVar[TransactionKind]
    TRANSACTION_KIND_ADJUSTMENT: _ClassVar[TransactionKind]

class TopUpStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TOP_UP_STATUS_UNSPECIFIED: _ClassVar[TopUpStatus]
    TOP_UP_STATUS_PENDING: _ClassVar[TopUpStatus]
    TOP_UP_STATUS_PROCESSING: _ClassVar[TopUpStatus]
    TOP_UP_STATUS_COMPLETED: _ClassVar[TopUpStatus]
    TOP_UP_STATUS_FAILED: _ClassVar[TopUpStatus]

class PaymentGateway(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PAYMENT_GATEWAY_UNSPECIFIED: _ClassVar[PaymentGateway]
    PAYMENT_GATEWAY_PAYSTACK: _ClassVar[PaymentGateway]
    PAYMENT_GATEWAY_SANDBOX: _ClassVar[PaymentGateway]
TRANSACTION_KIND_UNSPECIFIED: TransactionKind
TRANSACTION_KIND_TOP_UP: TransactionKind
TRANSACTION_KIND_VERIFICATION_HOLD: TransactionKind
TRANSACTION_KIND_VERIFICATION_REFUND: TransactionKind
TRANSACTION_KIND_SUBSCRIPTION_FEE: TransactionKind
TRANSACTION_KIND_OVERAGE_CHARGE: TransactionKind
TRANSACTION_KIND_ADJUSTMENT: TransactionKind
TOP_UP_STATUS_UNSPECIFIED: TopUpStatus
TOP_UP_STATUS_PENDING: TopUpStatus
TOP_UP_STATUS_PROCESSING: TopUpStatus
TOP_UP_STATUS_COMPLETED: TopUpStatus
TOP_UP_STATUS_FAILED: TopUpStatus
PAYMENT_GATEWAY_UNSPECIFIED: PaymentGateway
PAYMENT_GATEWAY_PAYSTACK: PaymentGateway
PAYMENT_GATEWAY_SANDBOX: PaymentGateway

class Transaction(_message.Message):
    __slots__ = ("name", "kind", "amount", "balance_after", "description", "related_resource", "reason", "create_time")
    NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    BALANCE_AFTER_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    RELATED_RESOURCE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    name: str
    kind: TransactionKind
    amount: _common_pb2.Money
    balance_after: _common_pb2.Money
    description: str
    related_resource: str
    reason: str
    create_time: _timestamp_pb2.Timestamp
    def __init__(self, name: _Optional[str] = ..., kind: _Optional[_Union[TransactionKind, str]] = ..., amount: _Optional[_Union[_common_pb2.Money, _Mapping]] = ..., balance_after: _Optional[_Union[_common_pb2.Money, _Mapping]] = ..., description: _Optional[str] = ..., related_resource: _Optional[str] = ..., reason: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class TopUp(_message.Message):
    __slots__ = ("name", "reference", "amount", "status", "checkout_url", "gateway", "charged_amount", "credited_amount", "failure_reason", "create_time", "end_time", "transaction")
    NAME_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    CHECKOUT_URL_FIELD_NUMBER: _ClassVar[int]
    GATEWAY_FIELD_NUMBER: _ClassVar[int]
    CHARGED_AMOUNT_FIELD_NUMBER: _ClassVar[int]
    CREDITED_AMOUNT_FIELD_NUMBER: _ClassVar[int]
    FAILURE_REASON_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    TRANSACTION_FIELD_NUMBER: _ClassVar[int]
    name: str
    reference: str
    amount: _common_pb2.Money
    status: TopUpStatus
    checkout_url: str
    gateway: PaymentGateway
    charged_amount: _common_pb2.Money
    credited_amount: _common_pb2.Money
    failure_reason: str
    create_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    transaction: str
    def __init__(self, name: _Optional[str] = ..., reference: _Optional[str] = ..., amount: _Optional[_Union[_common_pb2.Money, _Mapping]] = ..., status: _Optional[_Union[TopUpStatus, str]] = ..., checkout_url: _Optional[str] = ..., gateway: _Optional[_Union[PaymentGateway, str]] = ..., charged_amount: _Optional[_Union[_common_pb2.Money, _Mapping]] = ..., credited_amount: _Optional[_Union[_common_pb2.Money, _Mapping]] = ..., failure_reason: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., transaction: _Optional[str] = ...) -> None: ...

class GetBalanceRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetBalanceResponse(_message.Message):
    __slots__ = ("balance", "held", "update_time")
    BALANCE_FIELD_NUMBER: _ClassVar[int]
    HELD_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    balance: _common_pb2.Money
    held: _common_pb2.Money
    update_time: _timestamp_pb2.Timestamp
    def __init__(self, balance: _Optional[_Union[_common_pb2.Money, _Mapping]] = ..., held: _Optional[_Union[_common_pb2.Money, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListTransactionsRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "kind")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    kind: TransactionKind
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., kind: _Optional[_Union[TransactionKind, str]] = ...) -> None: ...

class ListTransactionsResponse(_message.Message):
    __slots__ = ("transactions", "next_page_token")
    TRANSACTIONS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    transactions: _containers.RepeatedCompositeFieldContainer[Transaction]
    next_page_token: str
    def __init__(self, transactions: _Optional[_Iterable[_Union[Transaction, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class CreateTopUpRequest(_message.Message):
    __slots__ = ("amount", "request_id", "callback_url")
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    CALLBACK_URL_FIELD_NUMBER: _ClassVar[int]
    amount: _common_pb2.Money
    request_id: str
    callback_url: str
    def __init__(self, amount: _Optional[_Union[_common_pb2.Money, _Mapping]] = ..., request_id: _Optional[str] = ..., callback_url: _Optional[str] = ...) -> None: ...

class CreateTopUpResponse(_message.Message):
    __slots__ = ("top_up",)
    TOP_UP_FIELD_NUMBER: _ClassVar[int]
    top_up: TopUp
    def __init__(self, top_up: _Optional[_Union[TopUp, _Mapping]] = ...) -> None: ...

class VerifyTopUpRequest(_message.Message):
    __slots__ = ("reference",)
    REFERENCE_FIELD_NUMBER: _ClassVar[int]
    reference: str
    def __init__(self, reference: _Optional[str] = ...) -> None: ...

class VerifyTopUpResponse(_message.Message):
    __slots__ = ("top_up", "balance")
    TOP_UP_FIELD_NUMBER: _ClassVar[int]
    BALANCE_FIELD_NUMBER: _ClassVar[int]
    top_up: TopUp
    balance: _common_pb2.Money
    def __init__(self, top_up: _Optional[_Union[TopUp, _Mapping]] = ..., balance: _Optional[_Union[_common_pb2.Money, _Mapping]] = ...) -> None: ...

import datetime

from google.api import annotations_pb2 as _annotations_pb2
from google.api import field_behavior_pb2 as _field_behavior_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from namaskah.v1 import common_pb2 as _common_pb2
from namaskah.v1 import verification_pb2 as _verification_pb2
from namaskah.v1 import wallet_pb2 as _wallet_pb2
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SandboxPaymentOutcome(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SANDBOX_PAYMENT_OUTCOME_UNSPECIFIED: _ClassVar[SandboxPaymentOutcome]
    SANDBOX_PAYMENT_OUTCOME_SUCCEEDED: _ClassVar[SandboxPaymentOutcome]
    SANDBOX_PAYMENT_OUTCOME_FAILED: _ClassVar[SandboxPaymentOutcome]
SANDBOX_PAYMENT_OUTCOME_UNSPECIFIED: SandboxPaymentOutcome
SANDBOX_PAYMENT_OUTCOME_SUCCEEDED: SandboxPaymentOutcome
SANDBOX_PAYMENT_OUTCOME_FAILED: SandboxPaymentOutcome

class InjectSmsRequest(_message.Message):
    __slots__ = ("phone_number", "text", "sender", "receive_time")
    PHONE_NUMBER_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    SENDER_FIELD_NUMBER: _ClassVar[int]
    RECEIVE_TIME_FIELD_NUMBER: _ClassVar[int]
    phone_number: str
    text: str
    sender: str
    receive_time: _timestamp_pb2.Timestamp
    def __init__(self, phone_number: _Optional[str] = ..., text: _Optional[str] = ..., sender: _Optional[str] = ..., receive_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class InjectSmsResponse(_message.Message):
    __slots__ = ("verification", "ignored")
    VERIFICATION_FIELD_NUMBER: _ClassVar[int]
    IGNORED_FIELD_NUMBER: _ClassVar[int]
    verification: _verification_pb2.Verification
    ignored: bool
    def __init__(self, verification: _Optional[_Union[_verification_pb2.Verification, _Mapping]] = ..., ignored: _Optional[bool] = ...) -> None: ...

class CompletePaymentRequest(_message.Message):
    __slots__ = ("reference", "outcome", "paid_amount")
    REFERENCE_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    PAID_AMOUNT_FIELD_NUMBER: _ClassVar[int]
    reference: str
    outcome: SandboxPaymentOutcome
    paid_amount: _common_pb2.Money
    def __init__(self, reference: _Optional[str] = ..., outcome: _Optional[_Union[SandboxPaymentOutcome, str]] = ..., paid_amount: _Optional[_Union[_common_pb2.Money, _Mapping]] = ...) -> None: ...

class CompletePaymentResponse(_message.Message):
    __slots__ = ("top_up",)
    TOP_UP_FIELD_NUMBER: _ClassVar[int]
    top_up: _wallet_pb2.TopUp
    def __init__(self, top_up: _Optional[_Union[_wallet_pb2.TopUp, _Mapping]] = ...) -> None: ...

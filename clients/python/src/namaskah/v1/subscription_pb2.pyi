import datetime

from google.api import annotations_pb2 as _annotations_pb2
from google.api import field_behavior_pb2 as _field_behavior_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from namaskah.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Plan(_message.Message):
    __slots__ = ("name", "tier", "display_name", "monthly_fee", "requests_per_minute", "discount_basis_points", "usage_billing", "included_api_calls", "overage_price_per_thousand_calls", "white_label")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TIER_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    MONTHLY_FEE_FIELD_NUMBER: _ClassVar[int]
    REQUESTS_PER_MINUTE_FIELD_NUMBER: _ClassVar[int]
    DISCOUNT_BASIS_POINTS_FIELD_NUMBER: _ClassVar[int]
    USAGE_BILLING_FIELD_NUMBER: _ClassVar[int]
    INCLUDED_API_CALLS_FIELD_NUMBER: _ClassVar[int]
    OVERAGE_PRICE_PER_THOUSAND_CALLS_FIELD_NUMBER: _ClassVar[int]
    WHITE_LABEL_FIELD_NUMBER: _ClassVar[int]
    name: str
    tier: _common_pb2.PlanTier
    display_name: str
    monthly_fee: _common_pb2.Money
    requests_per_minute: int
    discount_basis_points: int
    usage_billing: bool
    included_api_calls: int
    overage_price_per_thousand_calls: _common_pb2.Money
    white_label: bool
    def __init__(self, name: _Optional[str] = ..., tier: _Optional[_Union[_common_pb2.PlanTier, str]] = ..., display_name: _Optional[str] = ..., monthly_fee: _Optional[_Union[_common_pb2.Money, _Mapping]] = ..., requests_per_minute: _Optional[int] = ..., discount_basis_points: _Optional[int] = ..., usage_billing: _Optional[bool] = ..., included_api_calls: _Optional[int] = ..., overage_price_per_thousand_calls: _Optional[_Union[_common_pb2.Money, _Mapping]] = ..., white_label: _Optional[bool] = ...) -> None: ...

class Subscription(_message.Message):
    __slots__ = ("name", "plan", "current_period_start_time", "current_period_end_time", "scheduled_plan", "cancel_at_period_end", "next_renewal_fee", "plan_start_time", "update_time")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PLAN_FIELD_NUMBER: _ClassVar[int]
    CURRENT_PERIOD_START_TIME_FIELD_NUMBER: _ClassVar[int]
    CURRENT_PERIOD_END_TIME_FIELD_NUMBER: _ClassVar[int]
    SCHEDULED_PLAN_FIELD_NUMBER: _ClassVar[int]
    CANCEL_AT_PERIOD_END_FIELD_NUMBER: _ClassVar[int]
    NEXT_RENEWAL_FEE_FIELD_NUMBER: _ClassVar[int]
    PLAN_START_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    name: str
    plan: _common_pb2.PlanTier
    current_period_start_time: _timestamp_pb2.Timestamp
    current_period_end_time: _timestamp_pb2.Timestamp
    scheduled_plan: _common_pb2.PlanTier
    cancel_at_period_end: bool
    next_renewal_fee: _common_pb2.Money
    plan_start_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    def __init__(self, name: _Optional[str] = ..., plan: _Optional[_Union[_common_pb2.PlanTier, str]] = ..., current_period_start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., current_period_end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., scheduled_plan: _Optional[_Union[_common_pb2.PlanTier, str]] = ..., cancel_at_period_end: _Optional[bool] = ..., next_renewal_fee: _Optional[_Union[_common_pb2.Money, _Mapping]] = ..., plan_start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Usage(_message.Message):
    __slots__ = ("plan", "period_start_time", "period_end_time", "api_calls", "verifications", "spend", "included_api_calls", "overage_api_calls", "overage_charge", "allowance_used_percent", "alert_threshold_percents", "crossed_threshold_percents", "update_time")
    PLAN_FIELD_NUMBER: _ClassVar[int]
    PERIOD_START_TIME_FIELD_NUMBER: _ClassVar[int]
    PERIOD_END_TIME_FIELD_NUMBER: _ClassVar[int]
    API_CALLS_FIELD_NUMBER: _ClassVar[int]
    VERIFICATIONS_FIELD_NUMBER: _ClassVar[int]
    SPEND_FIELD_NUMBER: _ClassVar[int]
    INCLUDED_API_CALLS_FIELD_NUMBER: _ClassVar[int]
    OVERAGE_API_CALLS_FIELD_NUMBER: _ClassVar[int]
    OVERAGE_CHARGE_FIELD_NUMBER: _ClassVar[int]
    ALLOWANCE_USED_PERCENT_FIELD_NUMBER: _ClassVar[int]
    ALERT_THRESHOLD_PERCENTS_FIELD_NUMBER: _ClassVar[int]
    CROSSED_THRESHOLD_PERCENTS_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    plan: _common_pb2.PlanTier
    period_start_time: _timestamp_pb2.Timestamp
    period_end_time: _timestamp_pb2.Timestamp
    api_calls: int
    verifications: int
    spend: _common_pb2.Money
    included_api_calls: int
    overage_api_calls: int
    overage_charge: _common_pb2.Money
    allowance_used_percent: int
    alert_threshold_percents: _containers.RepeatedScalarFieldContainer[int]
    crossed_threshold_percents: _containers.RepeatedScalarFieldContainer[int]
    update_time: _timestamp_pb2.Timestamp
    def __init__(self, plan: _Optional[_Union[_common_pb2.PlanTier, str]] = ..., period_start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., period_end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., api_calls: _Optional[int] = ..., verifications: _Optional[int] = ..., spend: _Optional[_Union[_common_pb2.Money, _Mapping]] = ..., included_api_calls: _Optional[int] = ..., overage_api_calls: _Optional[int] = ..., overage_charge: _Optional[_Union[_common_pb2.Money, _Mapping]] = ..., allowance_used_percent: _Optional[int] = ..., alert_threshold_percents: _Optional[_Iterable[int]] = ..., crossed_threshold_percents: _Optional[_Iterable[int]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class UsageAlert(_message.Message):
    __slots__ = ("name", "threshold_percents", "update_time")
    NAME_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_PERCENTS_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    name: str
    threshold_percents: _containers.RepeatedScalarFieldContainer[int]
    update_time: _timestamp_pb2.Timestamp
    def __init__(self, name: _Optional[str] = ..., threshold_percents: _Optional[_Iterable[int]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListPlansRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListPlansResponse(_message.Message):
    __slots__ = ("plans",)
    PLANS_FIELD_NUMBER: _ClassVar[int]
    plans: _containers.RepeatedCompositeFieldContainer[Plan]
    def __init__(self, plans: _Optional[_Iterable[_Union[Plan, _Mapping]]] = ...) -> None: ...

class GetSubscriptionRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetSubscriptionResponse(_message.Message):
    __slots__ = ("subscription",)
    SUBSCRIPTION_FIELD_NUMBER: _ClassVar[int]
    subscription: Subscription
    def __init__(self, subscription: _Optional[_Union[Subscription, _Mapping]] = ...) -> None: ...

class ChangePlanRequest(_message.Message):
    __slots__ = ("plan", "request_id")
    PLAN_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    plan: _common_pb2.PlanTier
    request_id: str
    def __init__(self, plan: _Optional[_Union[_common_pb2.PlanTier, str]] = ..., request_id: _Optional[str] = ...) -> None: ...

class ChangePlanResponse(_message.Message):
    __slots__ = ("subscription", "charged", "effective_time")
    SUBSCRIPTION_FIELD_NUMBER: _ClassVar[int]
    CHARGED_FIELD_NUMBER: _ClassVar[int]
    EFFECTIVE_TIME_FIELD_NUMBER: _ClassVar[int]
    subscription: Subscription
    charged: _common_pb2.Money
    effective_time: _timestamp_pb2.Timestamp
    def __init__(self, subscription: _Optional[_Union[Subscription, _Mapping]] = ..., charged: _Optional[_Union[_common_pb2.Money, _Mapping]] = ..., effective_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CancelSubscriptionRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class CancelSubscriptionResponse(_message.Message):
    __slots__ = ("subscription",)
    SUBSCRIPTION_FIELD_NUMBER: _ClassVar[int]
    subscription: Subscription
    def __init__(self, subscription: _Optional[_Union[Subscription, _Mapping]] = ...) -> None: ...

class GetUsageRequest(_message.Message):
    __slots__ = ("period_time",)
    PERIOD_TIME_FIELD_NUMBER: _ClassVar[int]
    period_time: _timestamp_pb2.Timestamp
    def __init__(self, period_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GetUsageResponse(_message.Message):
    __slots__ = ("usage",)
    USAGE_FIELD_NUMBER: _ClassVar[int]
    usage: Usage
    def __init__(self, usage: _Optional[_Union[Usage, _Mapping]] = ...) -> None: ...

class SetUsageAlertRequest(_message.Message):
    __slots__ = ("threshold_percents",)
    THRESHOLD_PERCENTS_FIELD_NUMBER: _ClassVar[int]
    threshold_percents: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, threshold_percents: _Optional[_Iterable[int]] = ...) -> None: ...

class SetUsageAlertResponse(_message.Message):
    __slots__ = ("usage_alert",)
    USAGE_ALERT_FIELD_NUMBER: _ClassVar[int]
    usage_alert: UsageAlert
    def __init__(self, usage_alert: _Optional[_Union[UsageAlert, _Mapping]] = ...) -> None: ...

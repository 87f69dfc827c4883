import datetime

from google.api import annotations_pb2 as _annotations_pb2
from google.api import field_behavior_pb2 as _field_behavior_pb2
from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from namaskah.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TimeGranularity(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TIME_GRANULARITY_UNSPECIFIED: _ClassVar[TimeGranularity]
    TIME_GRANULARITY_DAY: _ClassVar[TimeGranularity]
    TIME_GRANULARITY_WEEK: _ClassVar[TimeGranularity]
    TIME_GRANULARITY_MONTH: _ClassVar[TimeGranularity]

class FunnelStep(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FUNNEL_STEP_UNSPECIFIED: _ClassVar[FunnelStep]
    FUNNEL_STEP_REGISTERED: _ClassVar[FunnelStep]
    FUNNEL_STEP_EMAIL_VERIFIED: _ClassVar[FunnelStep]
    FUNNEL_STEP_FIRST_TOP_UP: _ClassVar[FunnelStep]
    FUNNEL_STEP_FIRST_VERIFICATION: _ClassVar[FunnelStep]
    FUNNEL_STEP_FIRST_COMPLETED_VERIFICATION: _ClassVar[FunnelStep]
    FUNNEL_STEP_PLAN_UPGRADED: _ClassVar[FunnelStep]
TIME_GRANULARITY_UNSPECIFIED: TimeGranularity
TIME_GRANULARITY_DAY: TimeGranularity
TIME_GRANULARITY_WEEK: TimeGranularity
TIME_GRANULARITY_MONTH: TimeGranularity
FUNNEL_STEP_UNSPECIFIED: FunnelStep
FUNNEL_STEP_REGISTERED: FunnelStep
FUNNEL_STEP_EMAIL_VERIFIED: FunnelStep
FUNNEL_STEP_FIRST_TOP_UP: FunnelStep
FUNNEL_STEP_FIRST_VERIFICATION: FunnelStep
FUNNEL_STEP_FIRST_COMPLETED_VERIFICATION: FunnelStep
FUNNEL_STEP_PLAN_UPGRADED: FunnelStep

class TrackEventRequest(_message.Message):
    __slots__ = ("event_name", "properties", "event_time", "anonymous_id", "request_id")
    class PropertiesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    EVENT_NAME_FIELD_NUMBER: _ClassVar[int]
    PROPERTIES_FIELD_NUMBER: _ClassVar[int]
    EVENT_TIME_FIELD_NUMBER: _ClassVar[int]
    ANONYMOUS_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    event_name: str
    properties: _containers.ScalarMap[str, str]
    event_time: _timestamp_pb2.Timestamp
    anonymous_id: str
    request_id: str
    def __init__(self, event_name: _Optional[str] = ..., properties: _Optional[_Mapping[str, str]] = ..., event_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., anonymous_id: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class TrackEventResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class RevenueFigures(_message.Message):
    __slots__ = ("top_ups", "verification_revenue", "refunds", "subscription_revenue", "overage_revenue", "net_revenue", "reseller_margin", "completed_verifications")
    TOP_UPS_FIELD_NUMBER: _ClassVar[int]
    VERIFICATION_REVENUE_FIELD_NUMBER: _ClassVar[int]
    REFUNDS_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIPTION_REVENUE_FIELD_NUMBER: _ClassVar[int]
    OVERAGE_REVENUE_FIELD_NUMBER: _ClassVar[int]
    NET_REVENUE_FIELD_NUMBER: _ClassVar[int]
    RESELLER_MARGIN_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_VERIFICATIONS_FIELD_NUMBER: _ClassVar[int]
    top_ups: _common_pb2.Money
    verification_revenue: _common_pb2.Money
    refunds: _common_pb2.Money
    subscription_revenue: _common_pb2.Money
    overage_revenue: _common_pb2.Money
    net_revenue: _common_pb2.Money
    reseller_margin: _common_pb2.Money
    completed_verifications: int
    def __init__(self, top_ups: _Optional[_Union[_common_pb2.Money, _Mapping]] = ..., verification_revenue: _Optional[_Union[_common_pb2.Money, _Mapping]] = ..., refunds: _Optional[_Union[_common_pb2.Money, _Mapping]] = ..., subscription_revenue: _Optional[_Union[_common_pb2.Money, _Mapping]] = ..., overage_revenue: _Optional[_Union[_common_pb2.Money, _Mapping]] = ..., net_revenue: _Optional[_Union[_common_pb2.Money, _Mapping]] = ..., reseller_margin: _Optional[_Union[_common_pb2.Money, _Mapping]] = ..., completed_verifications: _Optional[int] = ...) -> None: ...

class RevenueBucket(_message.Message):
    __slots__ = ("start_date", "end_date", "figures", "net_revenue_growth")
    START_DATE_FIELD_NUMBER: _ClassVar[int]
    END_DATE_FIELD_NUMBER: _ClassVar[int]
    FIGURES_FIELD_NUMBER: _ClassVar[int]
    NET_REVENUE_GROWTH_FIELD_NUMBER: _ClassVar[int]
    start_date: _common_pb2.Date
    end_date: _common_pb2.Date
    figures: RevenueFigures
    net_revenue_growth: float
    def __init__(self, start_date: _Optional[_Union[_common_pb2.Date, _Mapping]] = ..., end_date: _Optional[_Union[_common_pb2.Date, _Mapping]] = ..., figures: _Optional[_Union[RevenueFigures, _Mapping]] = ..., net_revenue_growth: _Optional[float] = ...) -> None: ...

class GetRevenueAnalyticsRequest(_message.Message):
    __slots__ = ("start_date", "end_date", "granularity", "tenant")
    START_DATE_FIELD_NUMBER: _ClassVar[int]
    END_DATE_FIELD_NUMBER: _ClassVar[int]
    GRANULARITY_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    start_date: _common_pb2.Date
    end_date: _common_pb2.Date
    granularity: TimeGranularity
    tenant: str
    def __init__(self, start_date: _Optional[_Union[_common_pb2.Date, _Mapping]] = ..., end_date: _Optional[_Union[_common_pb2.Date, _Mapping]] = ..., granularity: _Optional[_Union[TimeGranularity, str]] = ..., tenant: _Optional[str] = ...) -> None: ...

class GetRevenueAnalyticsResponse(_message.Message):
    __slots__ = ("buckets", "total", "previous_period_total", "net_revenue_growth")
    BUCKETS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_PERIOD_TOTAL_FIELD_NUMBER: _ClassVar[int]
    NET_REVENUE_GROWTH_FIELD_NUMBER: _ClassVar[int]
    buckets: _containers.RepeatedCompositeFieldContainer[RevenueBucket]
    total: RevenueFigures
    previous_period_total: RevenueFigures
    net_revenue_growth: float
    def __init__(self, buckets: _Optional[_Iterable[_Union[RevenueBucket, _Mapping]]] = ..., total: _Optional[_Union[RevenueFigures, _Mapping]] = ..., previous_period_total: _Optional[_Union[RevenueFigures, _Mapping]] = ..., net_revenue_growth: _Optional[float] = ...) -> None: ...

class FunnelStage(_message.Message):
    __slots__ = ("step", "customers", "conversion_from_previous", "conversion_from_start", "median_time_from_previous")
    STEP_FIELD_NUMBER: _ClassVar[int]
    CUSTOMERS_FIELD_NUMBER: _ClassVar[int]
    CONVERSION_FROM_PREVIOUS_FIELD_NUMBER: _ClassVar[int]
    CONVERSION_FROM_START_FIELD_NUMBER: _ClassVar[int]
    MEDIAN_TIME_FROM_PREVIOUS_FIELD_NUMBER: _ClassVar[int]
    step: FunnelStep
    customers: int
    conversion_from_previous: float
    conversion_from_start: float
    median_time_from_previous: _duration_pb2.Duration
    def __init__(self, step: _Optional[_Union[FunnelStep, str]] = ..., customers: _Optional[int] = ..., conversion_from_previous: _Optional[float] = ..., conversion_from_start: _Optional[float] = ..., median_time_from_previous: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class GetConversionFunnelRequest(_message.Message):
    __slots__ = ("start_date", "end_date", "tenant")
    START_DATE_FIELD_NUMBER: _ClassVar[int]
    END_DATE_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    start_date: _common_pb2.Date
    end_date: _common_pb2.Date
    tenant: str
    def __init__(self, start_date: _Optional[_Union[_common_pb2.Date, _Mapping]] = ..., end_date: _Optional[_Union[_common_pb2.Date, _Mapping]] = ..., tenant: _Optional[str] = ...) -> None: ...

class GetConversionFunnelResponse(_message.Message):
    __slots__ = ("cohort_size", "stages")
    COHORT_SIZE_FIELD_NUMBER: _ClassVar[int]
    STAGES_FIELD_NUMBER: _ClassVar[int]
    cohort_size: int
    stages: _containers.RepeatedCompositeFieldContainer[FunnelStage]
    def __init__(self, cohort_size: _Optional[int] = ..., stages: _Optional[_Iterable[_Union[FunnelStage, _Mapping]]] = ...) -> None: ...

class VerificationSuccessRate(_message.Message):
    __slots__ = ("service", "country", "completed", "expired", "failed", "cancelled", "success_rate")
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    COUNTRY_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_FIELD_NUMBER: _ClassVar[int]
    EXPIRED_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    CANCELLED_FIELD_NUMBER: _ClassVar[int]
    SUCCESS_RATE_FIELD_NUMBER: _ClassVar[int]
    service: str
    country: str
    completed: int
    expired: int
    failed: int
    cancelled: int
    success_rate: float
    def __init__(self, service: _Optional[str] = ..., country: _Optional[str] = ..., completed: _Optional[int] = ..., expired: _Optional[int] = ..., failed: _Optional[int] = ..., cancelled: _Optional[int] = ..., success_rate: _Optional[float] = ...) -> None: ...

class GetCustomerMetricsRequest(_message.Message):
    __slots__ = ("start_date", "end_date", "tenant")
    START_DATE_FIELD_NUMBER: _ClassVar[int]
    END_DATE_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    start_date: _common_pb2.Date
    end_date: _common_pb2.Date
    tenant: str
    def __init__(self, start_date: _Optional[_Union[_common_pb2.Date, _Mapping]] = ..., end_date: _Optional[_Union[_common_pb2.Date, _Mapping]] = ..., tenant: _Optional[str] = ...) -> None: ...

class GetCustomerMetricsResponse(_message.Message):
    __slots__ = ("total_customers", "new_customers", "new_customer_growth", "active_customers", "active_customer_growth", "daily_active_customers", "weekly_active_customers", "monthly_active_customers", "paying_customers", "average_revenue_per_user", "churn_rate", "customer_lifetime_value", "success_rates")
    TOTAL_CUSTOMERS_FIELD_NUMBER: _ClassVar[int]
    NEW_CUSTOMERS_FIELD_NUMBER: _ClassVar[int]
    NEW_CUSTOMER_GROWTH_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_CUSTOMERS_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_CUSTOMER_GROWTH_FIELD_NUMBER: _ClassVar[int]
    DAILY_ACTIVE_CUSTOMERS_FIELD_NUMBER: _ClassVar[int]
    WEEKLY_ACTIVE_CUSTOMERS_FIELD_NUMBER: _ClassVar[int]
    MONTHLY_ACTIVE_CUSTOMERS_FIELD_NUMBER: _ClassVar[int]
    PAYING_CUSTOMERS_FIELD_NUMBER: _ClassVar[int]
    AVERAGE_REVENUE_PER_USER_FIELD_NUMBER: _ClassVar[int]
    CHURN_RATE_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_LIFETIME_VALUE_FIELD_NUMBER: _ClassVar[int]
    SUCCESS_RATES_FIELD_NUMBER: _ClassVar[int]
    total_customers: int
    new_customers: int
    new_customer_growth: float
    active_customers: int
    active_customer_growth: float
    daily_active_customers: int
    weekly_active_customers: int
    monthly_active_customers: int
    paying_customers: int
    average_revenue_per_user: _common_pb2.Money
    churn_rate: float
    customer_lifetime_value: _common_pb2.Money
    success_rates: _containers.RepeatedCompositeFieldContainer[VerificationSuccessRate]
    def __init__(self, total_customers: _Optional[int] = ..., new_customers: _Optional[int] = ..., new_customer_growth: _Optional[float] = ..., active_customers: _Optional[int] = ..., active_customer_growth: _Optional[float] = ..., daily_active_customers: _Optional[int] = ..., weekly_active_customers: _Optional[int] = ..., monthly_active_customers: _Optional[int] = ..., paying_customers: _Optional[int] = ..., average_revenue_per_user: _Optional[_Union[_common_pb2.Money, _Mapping]] = ..., churn_rate: _Optional[float] = ..., customer_lifetime_value: _Optional[_Union[_common_pb2.Money, _Mapping]] = ..., success_rates: _Optional[_Iterable[_Union[VerificationSuccessRate, _Mapping]]] = ...) -> None: ...

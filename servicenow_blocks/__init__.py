"""prefect-servicenow: ServiceNow tickets fire Prefect flows, and flows write back to tickets.

The integration library: the ``ServiceNowCredentials`` block, the REST client (sync and async), the
encoded-query builder, choice codes, and Prefect tasks.
"""

from .client import AsyncServiceNowClient, AttachmentResult, BatchItem, BatchResult, ServiceNowClient
from .credentials import ServiceNowCredentials
from .errors import (
    ACLError,
    AmbiguousWriteError,
    AuthenticationError,
    BadRequestError,
    ConfigurationError,
    ConnectionFailedError,
    DataPolicyError,
    ForbiddenError,
    InstanceUnavailableError,
    InvalidTableError,
    NotFoundError,
    RateLimitedError,
    RetryBudgetExceededError,
    ServerError,
    ServiceNowError,
    TLSVerificationError,
    TransactionCancelledError,
)
from .query import Query, js, raw

__all__ = [
    "ACLError",
    "AmbiguousWriteError",
    "AsyncServiceNowClient",
    "AttachmentResult",
    "AuthenticationError",
    "BadRequestError",
    "BatchItem",
    "BatchResult",
    "ConfigurationError",
    "ConnectionFailedError",
    "DataPolicyError",
    "ForbiddenError",
    "InstanceUnavailableError",
    "InvalidTableError",
    "NotFoundError",
    "Query",
    "RateLimitedError",
    "RetryBudgetExceededError",
    "ServerError",
    "ServiceNowClient",
    "ServiceNowCredentials",
    "ServiceNowError",
    "TLSVerificationError",
    "TransactionCancelledError",
    "js",
    "raw",
]

"""The platform's error answers: status, message and detail, rendered in ServiceNow's envelope."""

from __future__ import annotations


class PlatformError(Exception):
    """An answer ServiceNow gives as ``{"error": {"message", "detail"}, "status": "failure"}``."""

    def __init__(self, status: int, message: str, detail: str | None = None, headers: dict[str, str] | None = None):
        super().__init__(f"{status} {message}: {detail}")
        self.status = status
        self.message = message
        self.detail = detail
        self.headers = headers or {}

    def envelope(self) -> dict:
        return {"error": {"message": self.message, "detail": self.detail}, "status": "failure"}


def not_authenticated() -> PlatformError:
    return PlatformError(401, "User Not Authenticated", "Required to provide Auth information")


def invalid_table(table: str) -> PlatformError:
    return PlatformError(400, f"Invalid table {table}", f"Table {table} does not exist")


def no_such_resource() -> PlatformError:
    return PlatformError(400, "Requested URI does not represent any resource", None)


def record_not_found() -> PlatformError:
    return PlatformError(404, "No Record found", "Record doesn't exist or ACL restricts the record retrieval")


def no_records_v1() -> PlatformError:
    return PlatformError(
        404, "No Record found", "Records matching query not found. Check query parameter or offset parameter"
    )


def acl_denied(operation: str) -> PlatformError:
    return PlatformError(403, "Operation Failed", f"ACL Exception {operation} Failed due to security constraints")


def read_denied() -> PlatformError:
    return PlatformError(403, "Insufficient rights to query records", None)


def data_policy(labels: list[str]) -> PlatformError:
    joined = ", ".join(labels)
    return PlatformError(
        403, "Operation Failed", f"Data Policy Exception: \n\tThe following fields are mandatory: {joined}\n"
    )


def bad_request(message: str, detail: str | None = None) -> PlatformError:
    return PlatformError(400, message, detail)

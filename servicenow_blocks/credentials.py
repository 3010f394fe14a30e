"""``ServiceNowCredentials``: the Prefect block that knows how to reach and authenticate to an instance."""

from __future__ import annotations

import hashlib
import logging
import re
import ssl
import threading
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlparse

import httpx
from prefect.blocks.abstract import CredentialsBlock
from pydantic import ConfigDict, Field, SecretStr, field_validator, model_validator

from .client import (
    AsyncServiceNowClient,
    AuthStrategy,
    ClientSettings,
    OAuthAuth,
    RetryPolicy,
    ServiceNowClient,
    api_key_auth,
    basic_auth,
    bearer_auth,
)
from .errors import ConfigurationError

__version__ = "0.1.0"
AuthType = Literal["basic", "oauth_password", "oauth_client_credentials", "api_key", "bearer"]
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]*$", re.I)
_OAUTH: dict[tuple[Any, ...], OAuthAuth] = {}  # shared OAuth token holders (see ServiceNowCredentials._auth)
_OAUTH_LOCK = threading.Lock()


def normalize_instance(value: str) -> str:
    """``acme``, ``acme.service-now.com``, ``https://acme.service-now.com/`` or any full URL -> base URL."""
    text = (value or "").strip()
    if not text:
        raise ValueError("instance is empty: give an instance name (acme), a host (acme.service-now.com) or a URL")
    if "://" not in text:
        text = f"https://{text}.service-now.com" if _NAME_RE.match(text) else f"https://{text}"
    parsed = urlparse(text)
    if "@" in parsed.netloc:
        # Never echo it: the user info may hold a password.
        raise ValueError(
            "instance must not carry a user name or password (https://user:password@host): give the bare URL "
            "(https://acme.service-now.com) and put the user and password in the username and password fields"
        )
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ValueError(f"instance {value!r} is not a usable URL: use https://<name>.service-now.com")
    path = parsed.path.rstrip("/")
    # People paste API URLs: keep the instance root.
    for marker in ("/api/", "/nav_to.do", "/now/"):
        if marker in path + "/":
            path = path.split(marker.rstrip("/"), 1)[0]
    return f"{parsed.scheme}://{parsed.netloc}{path}"


class ServiceNowCredentials(CredentialsBlock):
    """Connection and authentication for one ServiceNow instance.

    Supports basic auth, OAuth (password grant with refresh tokens, or client credentials), an API key
    (``x-sn-apikey``) and a fixed bearer token. Secrets are ``SecretStr``: masked in the UI, the API,
    logs and reprs. ``get_client()`` / ``get_async_client()`` build the REST client.
    """

    _block_type_name = "ServiceNow Credentials"
    _block_type_slug = "servicenow-credentials"
    _logo_url = "https://images.ctfassets.net/gm98wzqotmnx/3EWW1rBpEGsq0Q5x12Xb9w/servicenow.png"
    _documentation_url = "https://github.com/prefect-servicenow/prefect-servicenow#configuration"
    # A validation error must not echo what was given: an instance or proxy URL may carry a password.
    model_config = ConfigDict(hide_input_in_errors=True)

    instance: str = Field(
        description="Instance name (acme), host (acme.service-now.com) or URL (https://acme.service-now.com)."
    )
    auth_type: AuthType = Field(default="basic", description="How to authenticate.")
    username: str | None = Field(default=None, description="User for basic auth and the OAuth password grant.")
    password: SecretStr | None = Field(default=None, description="Password for basic auth / OAuth password grant.")
    client_id: str | None = Field(default=None, description="OAuth client id (Application Registry).")
    client_secret: SecretStr | None = Field(default=None, description="OAuth client secret.")
    api_key: SecretStr | None = Field(default=None, description="REST API key, sent as x-sn-apikey.")
    token: SecretStr | None = Field(default=None, description="A bearer token obtained elsewhere.")
    verify: bool = Field(default=True, description="Verify the instance's TLS certificate.")
    ca_bundle: str | None = Field(default=None, description="Path to a CA bundle for a private CA or TLS proxy.")
    proxy: SecretStr | None = Field(
        default=None,
        description="HTTP(S) proxy URL (egress proxy or MID-server path); secret, as it may carry a password.",
    )
    connect_timeout: float = Field(default=10.0, gt=0, description="Seconds to establish a connection.")
    timeout: float = Field(
        default=60.0, gt=0, description="Seconds to wait for an answer (ServiceNow quotas are 60 s)."
    )
    user_agent: str = Field(default=f"prefect-servicenow/{__version__}", description="User-Agent header.")
    page_size: int = Field(default=1000, ge=1, le=10000, description="Rows per page when reading lists.")
    concurrency: int = Field(default=4, ge=1, le=32, description="Pages fetched at once for large reads.")
    max_concurrency: int = Field(
        default=8, ge=1, le=64, description="Requests in flight to this instance, across the whole process."
    )
    requests_per_second: float | None = Field(
        default=None, gt=0, description="Client-side request rate limit for this instance (process-wide)."
    )
    max_attempts: int = Field(default=6, ge=1, le=20, description="Attempts per request, first one included.")
    max_retry_wait: float = Field(default=120.0, ge=0, description="Seconds of waiting the retries may spend.")

    @field_validator("instance")
    @classmethod
    def _instance(cls, value: str) -> str:
        return normalize_instance(value)

    @model_validator(mode="after")
    def _auth_fields(self) -> ServiceNowCredentials:
        needed = {
            "basic": ("username", "password"),
            "oauth_password": ("client_id", "client_secret", "username", "password"),
            "oauth_client_credentials": ("client_id", "client_secret"),
            "api_key": ("api_key",),
            "bearer": ("token",),
        }[self.auth_type]
        missing = [name for name in needed if not _present(getattr(self, name))]
        if missing:
            raise ValueError(
                f"auth_type {self.auth_type!r} needs {', '.join(missing)}: set "
                + " and ".join(missing)
                + " on the ServiceNowCredentials block"
            )
        return self

    @property
    def base_url(self) -> str:
        return self.instance

    @field_validator("proxy")
    @classmethod
    def _proxy(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None
        url = value.get_secret_value().strip()
        parsed = urlparse(url)
        if parsed.scheme not in ("http", "https", "socks5", "socks5h") or not parsed.hostname:
            # Not echoed: whatever it is, it may hold a password.
            raise ValueError("proxy is not a usable proxy URL: use http://[user:password@]host:port")
        return SecretStr(url)

    def _auth(self) -> AuthStrategy:
        secret = _reveal
        if self.auth_type == "basic":
            return basic_auth(self.username or "", secret(self.password))
        if self.auth_type == "api_key":
            return api_key_auth(secret(self.api_key))
        if self.auth_type == "bearer":
            return bearer_auth(secret(self.token))
        grant = "password" if self.auth_type == "oauth_password" else "client_credentials"
        password = secret(self.password) if grant == "password" and self.password else None
        # One token per instance, client and user in the process: a flow's tasks each build a client, and a
        # token request per task would pile up tokens on the instance. The key holds a digest, not the secrets.
        digest = hashlib.sha256(f"{secret(self.client_secret)}\0{password or ''}".encode()).hexdigest()
        key = (self.base_url, grant, self.client_id or "", self.username if password else None, digest)
        with _OAUTH_LOCK:
            auth = _OAUTH.get(key)
            if auth is None:
                auth = _OAUTH[key] = OAuthAuth(
                    grant,  # type: ignore[arg-type]
                    self.client_id or "",
                    secret(self.client_secret),
                    username=self.username,
                    password=password,
                )
            return auth

    def client_settings(self, logger: logging.Logger | logging.LoggerAdapter | None = None) -> ClientSettings:
        return ClientSettings(
            base_url=self.base_url,
            auth=self._auth(),
            page_size=self.page_size,
            concurrency=self.concurrency,
            max_concurrency=self.max_concurrency,
            requests_per_second=self.requests_per_second,
            retry=RetryPolicy(max_attempts=self.max_attempts, max_wait_s=self.max_retry_wait),
            logger=logger or logging.getLogger("servicenow_blocks"),
        )

    def _ssl_context(self) -> ssl.SSLContext | bool:
        """What httpx verifies with: False, True (its default trust store), or a context trusting ca_bundle."""
        hint = "Point ca_bundle at the PEM file of the CA that signed the instance's certificate"
        if self.ca_bundle and not Path(self.ca_bundle).is_file():
            raise ConfigurationError(f"ca_bundle {self.ca_bundle!r} is not a readable file", hint=hint)
        if not self.verify or not self.ca_bundle:
            return self.verify
        try:
            return ssl.create_default_context(cafile=self.ca_bundle)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigurationError(
                f"ca_bundle {self.ca_bundle!r} could not be loaded as CA certificates ({exc})", hint=hint
            ) from exc

    def _http_options(self) -> dict[str, Any]:
        proxy = self.proxy.get_secret_value() if self.proxy is not None else None
        return {
            "verify": self._ssl_context(),
            "proxy": proxy,
            "timeout": httpx.Timeout(self.timeout, connect=self.connect_timeout, pool=self.timeout),
            "headers": {"User-Agent": self.user_agent},
            "limits": httpx.Limits(
                max_connections=self.max_concurrency * 2, max_keepalive_connections=self.max_concurrency
            ),
            "follow_redirects": False,
            "trust_env": proxy is None,
        }

    def get_client(
        self,
        client_type: Literal["sync", "async"] = "sync",
        logger: logging.Logger | logging.LoggerAdapter | None = None,
    ) -> ServiceNowClient | AsyncServiceNowClient:
        """A REST client for this instance (sync by default)."""
        if client_type == "async":
            return self.get_async_client(logger)
        return ServiceNowClient(self.client_settings(logger), httpx.Client(**self._http_options()))

    def get_async_client(self, logger: logging.Logger | logging.LoggerAdapter | None = None) -> AsyncServiceNowClient:
        return AsyncServiceNowClient(self.client_settings(logger), httpx.AsyncClient(**self._http_options()))


def _present(value: Any) -> bool:
    if isinstance(value, SecretStr):
        return bool(value.get_secret_value())
    return bool(value)


def _reveal(value: SecretStr | None) -> str:
    return value.get_secret_value() if value is not None else ""

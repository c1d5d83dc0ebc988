"""What may go on a span or into a telemetry warning: free text with credentials, URLs' user info and OTLP header
values masked, and endpoints without their secrets."""

from __future__ import annotations

import os
import re
from urllib.parse import unquote, urlsplit


_MAX_TEXT = 1_000  # longest free text put on a span
_NAMED_ROLE = re.compile(r'\b(user|role) "[^"]*"')  # PostgreSQL's "… for user "app"", "role "app" does not exist"
_URL_USERINFO = re.compile(r"(\b[A-Za-z][A-Za-z0-9+.-]*://)[^/\s@]*@")


def clean(text: object, limit: int = _MAX_TEXT) -> str:
    """Free text made safe for telemetry: no known DB secret, no URL userinfo, no OTLP header value."""
    from migrate_wrapper.config.dburl import mask_text

    out = _URL_USERINFO.sub(r"\1", mask_text(str(text), header_values()))  # telemetry gets no user names either
    out = _NAMED_ROLE.sub(r'\1 "***"', out)
    return out if len(out) <= limit else out[: limit - 1] + "…"


def safe_endpoint(url: str) -> str:
    """An endpoint for messages: scheme, host, port and path; never userinfo, query or fragment."""
    url = url.strip()
    if "://" not in url:
        return url.rsplit("@", 1)[-1].split("?", 1)[0].split("/", 1)[0]
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<invalid endpoint>"
    return f"{parts.scheme}://{host}{port}{parts.path}"


def header_values() -> list[str]:
    values: list[str] = []
    for name in ("OTEL_EXPORTER_OTLP_HEADERS", "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
                 "OTEL_EXPORTER_OTLP_METRICS_HEADERS"):
        raw = os.environ.get(name)
        if not raw:
            continue
        for item in raw.split(","):
            if "=" in item:
                value = item.split("=", 1)[1].strip()
                values += [value, unquote(value)]
    return [v for v in values if v]

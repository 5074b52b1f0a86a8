"""Log formatting: one JSON object per line in production (`DJANGO_LOG_FORMAT=json`),
readable text in development. Every line carries the request, tenant and job it is about
(`core.logcontext`), and secrets are masked however they got into a message."""

from __future__ import annotations

import datetime as dt
import json
import logging
import re

from core import logcontext

# API keys, webhook secrets, Stripe keys and bearer tokens, wherever they appear.
SECRET = re.compile(
    r"(bk_(?:live|test)_[0-9a-f]{12}_)[A-Za-z0-9_-]+"
    r"|(whsec_)[A-Za-z0-9+/=_-]+"
    r"|((?:sk|rk)_(?:live|test)_)[A-Za-z0-9_]+"
    r"|(Bearer\s+)\S+",
    re.IGNORECASE,
)
# `context` is the text formatter's rendering of the same fields.
STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "context"}


def redact(text: str) -> str:
    return SECRET.sub(lambda m: next(g for g in m.groups() if g) + "[redacted]", text)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": getattr(record, "event", None) or record.getMessage(),
            "message": redact(record.getMessage()),
            **logcontext.current(),
        }
        for key, value in vars(record).items():
            if key not in STANDARD and key != "event" and value is not None:
                line[key] = value if isinstance(value, int | float | bool) else str(value)
        if record.exc_info:
            line["exception"] = redact(self.formatException(record.exc_info))
        line["event"] = redact(str(line["event"]))
        return json.dumps(line, default=str)


class TextFormatter(logging.Formatter):
    """`time level logger [request job] message` for a person at a terminal."""

    def format(self, record: logging.LogRecord) -> str:
        context = " ".join(f"{k}={v}" for k, v in logcontext.current().items())
        record.context = f" [{context}]" if context else ""
        return redact(super().format(record))

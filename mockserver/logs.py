"""The CLI's logging: secrets redacted from every record, malformed requests on one line.

aiohttp logs a request it cannot parse with its traceback and the raw offending line, which may carry an
``Authorization`` header or a signed URL's ``signature=``. The handler installed here rewrites those records
into one warning line and replaces secret values (never the text around them) in everything it writes,
tracebacks of real server errors included.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Iterable

from aiohttp.http_exceptions import HttpProcessingError

from mockserver.recordings.redaction import CREDENTIAL_HEADERS

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
MASK = "***"
_EXCERPT = re.compile(r"""[ :]*b?(?P<q>['"])(?P<quoted>.*)(?P=q)[.]?""")
"""Where aiohttp's parsers quote the offending bytes in their message (as a Python repr)."""
_REQUEST_LINE = re.compile(r"[A-Z]+ \S+ HTTP/")
_HEADER_NAME = re.compile(r"([!#$%&'*+.^_`|~0-9A-Za-z-]+):")
MAX_REASON_CHARS = 300
"""A malformed request's reason is cut here: the offending line may be up to the parser's limit long."""

_QUERY = (
    "signature",
    "sig",
    "x-amz-signature",
    "x-goog-signature",
    "x-amz-security-token",
    "x-amz-credential",
    "token",
    "access_token",
    "api_key",
    "apikey",
    "api-key",
)
# A header value runs to the end of its line: a real newline, an escaped one inside a bytes repr, or the
# quote closing the repr (a quote followed by the end or a delimiter, so a quote inside the value is kept).
_VALUE = r"""(?:(?!\\r|\\n|['"](?:[\s,;)\]}>]|$))[^\r\n])+"""
_SCHEME = r"(?:bearer|basic|token|digest)\s+"


class Redactor:
    """Replaces secret values in text: credential headers, bearer tokens, URL signatures, known key shapes."""

    def __init__(self, api_keys: Iterable[str] = (), *, prefixes: Iterable[str] = ("whsec_",)) -> None:
        # Keys are matched by their style (the part up to the last "_" or "-"), so keys created at run
        # time in the same style are hidden too; a key without such a prefix is matched literally.
        shapes = {re.escape(p) + r"[A-Za-z0-9._~+/=-]+" for p in prefixes}
        for key in api_keys:
            cut = max(key.rfind("_"), key.rfind("-")) + 1
            shapes.add(re.escape(key[:cut]) + r"[A-Za-z0-9._~+/=-]+" if cut >= 3 else re.escape(key))
        # Longest first: a name that ends another (authorization, proxy-authorization) never cuts it short.
        header = "|".join(map(re.escape, sorted(CREDENTIAL_HEADERS, key=len, reverse=True)))
        query = "|".join(map(re.escape, _QUERY))
        self._header = re.compile(rf"""(?i)(\b(?:{header})['"]?\s*[:=]\s*['"]?(?:{_SCHEME})?){_VALUE}""")
        self._bearer = re.compile(rf"(?i)(\bbearer\s+)(?!{re.escape(MASK)})[^\s'\",;]+")
        self._query = re.compile(rf"(?i)((?<=[?&;])(?:{query})=)[^&\s'\"#]+")
        self._keys = re.compile("|".join(sorted(shapes, key=len, reverse=True))) if shapes else None

    def __call__(self, text: str) -> str:
        """``text`` with every secret value replaced by ``***``."""
        text = self._header.sub(rf"\1{MASK}", text)
        text = self._bearer.sub(rf"\1{MASK}", text)
        text = self._query.sub(rf"\1{MASK}", text)
        if self._keys is not None:
            text = self._keys.sub(MASK, text)
        return text


class RedactingFormatter(logging.Formatter):
    """A formatter whose whole output (message, traceback, stack) goes through a ``Redactor``."""

    def __init__(self, redactor: Redactor, fmt: str = LOG_FORMAT) -> None:
        super().__init__(fmt)
        self.redactor = redactor

    def format(self, record: logging.LogRecord) -> str:
        """The record as the base formatter writes it, secrets replaced."""
        return self.redactor(super().format(record))


class MalformedRequestFilter(logging.Filter):
    """Turns aiohttp's tracebacks for what is not a server error into one line.

    Those are a request its parser refused ("Error handling request", a warning), and its own race at
    shutdown: a request that ends just as the shutdown's wait for it times out makes aiohttp set the result
    of the cancelled wait ("Unhandled exception", ``InvalidStateError`` in ``_handle_request``), after the
    response was sent.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record in place when it is one of those; always keep it."""
        error = record.exc_info[1] if record.exc_info else None
        if error is None or not record.name.startswith("aiohttp."):
            return True
        if isinstance(error, HttpProcessingError):
            remote = record.args[0] if isinstance(record.args, tuple) and record.args else "an unknown client"
            _one_line(
                record, logging.WARNING, "malformed request from %s: %s %s", remote, error.code, reason(error)
            )
        elif isinstance(error, asyncio.InvalidStateError) and _raised_in(error, "_handle_request"):
            _one_line(record, logging.INFO, "a request ended as the shutdown stopped waiting for it")
        return True


def _one_line(record: logging.LogRecord, level: int, msg: str, *args: object) -> None:
    record.msg, record.args = msg, args
    record.exc_info = record.exc_text = None
    record.levelno, record.levelname = level, logging.getLevelName(level)


def _raised_in(error: BaseException, function: str) -> bool:
    tb = error.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return tb is not None and tb.tb_frame.f_code.co_name == function


def reason(error: HttpProcessingError) -> str:
    """The parser's words on one line, with the request line it refused (a header's name only), if any.

    The offending bytes are quoted escaped (so no control character reaches the log); a header's value
    is left out whatever its name: the pure-Python parser quotes a bad value without the header's name.
    """
    message = str(error.message)
    excerpt = _EXCERPT.search(message)
    words = _EXCERPT.sub("", message) if excerpt else message
    lines = (line.strip().rstrip(":").strip() for line in words.splitlines())
    text = ": ".join(line for line in lines if line and set(line) != {"^"}) or type(error).__name__
    if excerpt is not None:
        quoted = excerpt["quoted"]
        if _REQUEST_LINE.match(quoted):
            text += f" ({quoted})"
        elif header := _HEADER_NAME.match(quoted):
            text += f" (header {header[1]})"
    return text if len(text) <= MAX_REASON_CHARS else text[: MAX_REASON_CHARS - 3] + "..."


def configure_logging(redactor: Redactor, level: int = logging.INFO) -> None:
    """Log to standard error through the redacting formatter and the malformed-request filter.

    Called again (with the served keys, once they are known), it swaps the formatter in place.
    """
    logging.basicConfig(level=level, format=LOG_FORMAT)
    # Warnings would otherwise reach standard error without the redactor.
    logging.captureWarnings(True)
    for handler in logging.getLogger().handlers:
        handler.setFormatter(RedactingFormatter(redactor))
        if not any(isinstance(f, MalformedRequestFilter) for f in handler.filters):
            handler.addFilter(MalformedRequestFilter())

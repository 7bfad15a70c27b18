"""Deterministic, readable model output: the same seed and request always give the same text."""

from __future__ import annotations

import functools
import hashlib
import json
import re
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

_TOKEN = re.compile(r"\s*(?:\w+|[^\w\s])")
_WORD = re.compile(r"[A-Za-z][A-Za-z'-]{3,}")
_STOPWORDS = frozenset(
    [
        "about",
        "above",
        "after",
        "again",
        "also",
        "been",
        "before",
        "being",
        "between",
        "could",
        "does",
        "doing",
        "each",
        "explain",
        "from",
        "have",
        "having",
        "here",
        "into",
        "just",
        "more",
        "most",
        "other",
        "over",
        "please",
        "same",
        "should",
        "some",
        "such",
        "tell",
        "than",
        "that",
        "their",
        "them",
        "then",
        "there",
        "these",
        "they",
        "this",
        "those",
        "through",
        "very",
        "what",
        "when",
        "where",
        "which",
        "while",
        "with",
        "would",
        "write",
        "your",
        "hello",
    ]
)
IMAGE_PART_TOKENS = 85
"""Tokens counted for one image part, as OpenAI-style vision APIs bill a low-detail image."""
_MAX_SENTENCES = 6
_REPLY_PICKS = struct.Struct(f">B{_MAX_SENTENCES}H")
"""How a reply reads its digest: a sentence count, then two bytes a sentence."""
_SENTENCE_TABLE = 4096
"""Sentences written once at start (~0.5 MiB); a reply strings 2 to 6 of them after its opening."""
_SENTENCE_PICKS = struct.Struct(">B12H")
"""How a table sentence reads its digest: a length (5 to 12 tokens before the period), two bytes a word."""
_CANONICAL = json.JSONEncoder(sort_keys=True, default=str, separators=(",", ":"))


def canonical(value: Any) -> bytes:
    """Canonical JSON bytes of request parts (sorted keys), the input of every digest."""
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS, default=str)
    except TypeError:
        # Integers past 64 bits or lone surrogates: the same input always takes this same path.
        return _CANONICAL.encode(value).encode("utf-8", "surrogatepass")


MESSAGE_OVERHEAD_TOKENS = 4
"""Tokens counted per message for its role and separators."""


def tokenize(text: str) -> list[str]:
    """Split text into tokens (a word or a punctuation mark with its leading space); they join back to it."""
    return _TOKEN.findall(text)


_ASCII_WORD = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_")
_ASCII_SPACE = frozenset(b" \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f")
"""What ``\\s`` matches in ASCII text: bytes.split() knows only the first six, so the rest become spaces."""
_ASCII_MARKS = bytes(c for c in range(128) if c not in _ASCII_WORD and c not in _ASCII_SPACE)
"""ASCII characters that are a token each (``[^\\w\\s]``)."""
_MARKS_TO_SPACE = bytes.maketrans(_ASCII_MARKS + b"\x1c\x1d\x1e\x1f", b" " * (len(_ASCII_MARKS) + 4))


def count_tokens(text: str) -> int:
    """How many tokens a text is: ``len(tokenize(text))``."""
    if not text.isascii():
        return len(_TOKEN.findall(text))
    # ASCII (most prompts): word runs plus marks, counted by C loops over the bytes, not a match object per
    # token; ~4x fewer instructions on a sentence, which counts: chat clients resend whole conversations.
    raw = text.encode("ascii")
    return len(raw.translate(_MARKS_TO_SPACE).split()) + len(raw) - len(raw.translate(None, _ASCII_MARKS))


def message_text(content: Any) -> str:
    """The text of a message's content: a string, or the text parts of a content-part list."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            str(p.get("text", "")) for p in content if isinstance(p, dict) and p.get("type") == "text"
        )
    return ""


def prompt_tokens(messages: Iterable[Any]) -> int:
    """Tokens of a chat input: each message's text, images and per-message overhead."""
    total = 0
    for message in messages:
        if not isinstance(message, dict):
            continue
        content = message.get("content")
        if isinstance(content, str):  # the common case, first
            total += MESSAGE_OVERHEAD_TOKENS + count_tokens(content)
            continue
        total += MESSAGE_OVERHEAD_TOKENS + count_tokens(message_text(content))
        if isinstance(content, list):
            total += IMAGE_PART_TOKENS * sum(
                1 for p in content if isinstance(p, dict) and p.get("type") == "image_url"
            )
    return total


@dataclass(slots=True)  # not frozen: a frozen init costs more, and one is made per request
class Completion:
    """Generated text cut to the token budget."""

    tokens: tuple[str, ...]
    finish_reason: str

    @property
    def text(self) -> str:
        """The completion's content."""
        return "".join(self.tokens)


def _topic(prompt: str) -> str:
    words = [w for w in _WORD.findall(prompt) if w.lower() not in _STOPWORDS]
    return " ".join(words[:2]).lower() if words else ""


@functools.cache
def sentences() -> tuple[tuple[str, ...], ...]:
    """The sentence table: Faker's English words, each sentence an opener (" Word"), words (" word"), ".".

    Built once (the mock warms it up off the event loop at start): choosing whole sentences from a digest
    keeps a reply to a handful of operations, where choosing word by word cost more than the rest of a
    request's handling. Faker is imported here, on first use: importing it costs ~0.1 s of start-up.
    """
    from faker.providers.lorem.en_US import Provider

    words = [" " + w for w in Provider.word_list]
    openers = [" " + w.capitalize() for w in Provider.word_list]
    table = []
    for index in range(_SENTENCE_TABLE):
        digest = hashlib.blake2b(b"sentence:%d" % index, digest_size=_SENTENCE_PICKS.size).digest()
        length, opener, *picks = _SENTENCE_PICKS.unpack(digest)
        chosen = picks[: 4 + length % 8]
        table.append((openers[opener % len(openers)], *(words[p % len(words)] for p in chosen), "."))
    return tuple(table)


@functools.lru_cache(maxsize=4096)
def _opening(prompt: str) -> tuple[str, ...]:
    topic = _topic(prompt)
    return tuple(
        tokenize(f"Here is what I can tell you about {topic}." if topic else "Thanks for your message.")
    )


class TextGenerator:
    """Writes replies from Faker's English vocabulary, seeded by the server seed and the request."""

    def __init__(self, seed: int) -> None:
        # Faker's own sentence builder costs ~100 us a reply; picking sentences written once from its word
        # list with a request digest gives the same kind of text at a fraction of the cost.
        self._seed = seed

    def digest(self, *parts: Any) -> int:
        """A stable integer for any JSON-able request parts (the seed included)."""
        return int.from_bytes(hashlib.blake2b(canonical([self._seed, *parts]), digest_size=8).digest(), "big")

    def reply(self, prompt: str, *, salt: Sequence[Any] = (), max_tokens: int | None = None) -> Completion:
        """A reply to ``prompt``: a sentence on its topic and a few more, cut at ``max_tokens``."""
        # One digest of the request picks every sentence: cheaper than seeding a Random per request (this
        # is the mock's hot path) and just as deterministic.
        # blake2b's default digest size: passing digest_size costs more than the longer digest.
        picks = _REPLY_PICKS.unpack_from(hashlib.blake2b(canonical([self._seed, prompt, *salt])).digest())
        table = sentences()
        tokens = list(_opening(prompt))
        for pick in picks[1 : 3 + picks[0] % (_MAX_SENTENCES - 1)]:  # picks[0]: how many sentences
            tokens += table[pick % _SENTENCE_TABLE]
        if max_tokens is not None and len(tokens) > max_tokens:
            # int(): JSON Schema's `integer` admits 5.0, which a validated body may carry.
            del tokens[int(max_tokens) :]
            return Completion(tuple(tokens), "length")
        return Completion(tuple(tokens), "stop")

    def short_id(self, *parts: Any, length: int = 24) -> str:
        """A deterministic lowercase hex id derived from the seed and ``parts`` (up to 64 characters)."""
        return hashlib.blake2b(canonical([self._seed, *parts]), digest_size=32).hexdigest()[:length]

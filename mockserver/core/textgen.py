"""Deterministic, readable model output: the same seed and request always give the same text."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from faker import Faker
from faker.providers.lorem.en_US import Provider as EnglishLorem

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
_STREAM_BYTES = 1 + 6 * (1 + 2 * 12)
"""Digest bytes a reply can consume: a sentence count, then per sentence a length and two bytes a word."""
MESSAGE_OVERHEAD_TOKENS = 4
"""Tokens counted per message for its role and separators."""


def tokenize(text: str) -> list[str]:
    """Split text into tokens (a word or a punctuation mark with its leading space); they join back to it."""
    return _TOKEN.findall(text)


def count_tokens(text: str) -> int:
    """How many tokens a text is."""
    return len(_TOKEN.findall(text))


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
        total += MESSAGE_OVERHEAD_TOKENS + count_tokens(message_text(content))
        if isinstance(content, list):
            total += IMAGE_PART_TOKENS * sum(
                1 for p in content if isinstance(p, dict) and p.get("type") == "image_url"
            )
    return total


@dataclass(frozen=True, slots=True)
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


class TextGenerator:
    """Writes replies from Faker's English vocabulary, seeded by the server seed and the request."""

    def __init__(self, seed: int) -> None:
        self._seed = seed
        # Faker's own sentence builder costs ~100 us a reply; drawing from its word list with a seeded
        # Random gives the same kind of text at a fraction of the cost (the mock's hot path).
        self._words: tuple[str, ...] = tuple(EnglishLorem.word_list)
        self.faker = Faker("en_US")
        """A shared Faker for providers' other fake data (seed it with ``seed_instance`` before use)."""

    def digest(self, *parts: Any) -> int:
        """A stable integer for any JSON-able request parts (the seed included)."""
        blob = json.dumps([self._seed, *parts], sort_keys=True, default=str, separators=(",", ":"))
        return int.from_bytes(hashlib.blake2b(blob.encode(), digest_size=8).digest(), "big")

    def reply(self, prompt: str, *, salt: Sequence[Any] = (), max_tokens: int | None = None) -> Completion:
        """A reply to ``prompt``: a sentence on its topic and a few more, cut at ``max_tokens``."""
        # One SHAKE-256 stream of the request drives every choice: cheaper than seeding a Random per
        # request (this is the mock's hot path) and just as deterministic.
        blob = json.dumps([self._seed, prompt, *salt], sort_keys=True, default=str, separators=(",", ":"))
        stream = hashlib.shake_256(blob.encode()).digest(_STREAM_BYTES)
        topic = _topic(prompt)
        opening = f"Here is what I can tell you about {topic}." if topic else "Thanks for your message."
        tokens = tokenize(opening)
        words, count = self._words, len(self._words)
        pos = 1
        for _ in range(2 + stream[0] % 5):
            length = 5 + stream[pos] % 8
            picks = [
                words[int.from_bytes(stream[pos + 1 + 2 * i : pos + 3 + 2 * i], "big") % count]
                for i in range(length)
            ]
            pos += 1 + 2 * length
            tokens.append(" " + picks[0].capitalize())
            tokens.extend(" " + word for word in picks[1:])
            tokens.append(".")
        if max_tokens is not None and len(tokens) > max_tokens:
            # int(): JSON Schema's `integer` admits 5.0, which a validated body may carry.
            return Completion(tuple(tokens[: int(max_tokens)]), "length")
        return Completion(tuple(tokens), "stop")

    def short_id(self, *parts: Any, length: int = 24) -> str:
        """A deterministic lowercase hex id derived from the seed and ``parts``."""
        blob = json.dumps([self._seed, *parts], sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:length]

"""Token counting and reply generation (core/textgen.py): the properties the chat endpoints rely on."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from mockserver.core.textgen import TextGenerator, count_tokens, prompt_tokens, tokenize

ASCII = st.text(alphabet=st.characters(max_codepoint=127), max_size=200)


@given(ASCII)
def test_ascii_count_matches_the_tokenizer(text: str) -> None:
    # The ASCII fast path counts with byte translations; it must agree with the regular expression exactly,
    # control characters and the \x1c-\x1f separators included.
    assert count_tokens(text) == len(tokenize(text))


@given(st.text(max_size=200))
def test_any_text_count_matches_the_tokenizer(text: str) -> None:
    assert count_tokens(text) == len(tokenize(text))


def test_every_ascii_character_alone_and_between_words() -> None:
    for code in range(128):
        for text in (chr(code), f"ab{chr(code)}cd", chr(code) * 3, f" {chr(code)} x"):
            assert count_tokens(text) == len(tokenize(text)), repr(text)


def test_prompt_tokens_count_each_message_with_its_overhead() -> None:
    messages = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": [{"type": "text", "text": "Hi, there!"}, {"type": "image_url"}]},
    ]
    # 4 tokens of overhead a message; "You are terse." is 4 tokens, "Hi, there!" 4, an image part 85.
    assert prompt_tokens(messages) == (4 + 4) + (4 + 4 + 85)


@given(st.text(max_size=80), st.integers(min_value=0, max_value=120))
def test_a_cut_reply_is_a_prefix_of_the_full_one(prompt: str, budget: int) -> None:
    text = TextGenerator(seed=7)
    full = text.reply(prompt, salt=("p", "m"))
    cut = text.reply(prompt, salt=("p", "m"), max_tokens=budget)
    assert cut.tokens == full.tokens[:budget]
    assert cut.finish_reason == ("length" if budget < len(full.tokens) else "stop")
    assert "".join(full.tokens) == full.text
    assert count_tokens(full.text) == len(full.tokens)


def test_replies_depend_on_the_seed_and_the_request() -> None:
    one, same, other = TextGenerator(1), TextGenerator(1), TextGenerator(2)
    assert (
        one.reply("Tell me about tides", salt=("a",)).text
        == same.reply("Tell me about tides", salt=("a",)).text
    )
    assert (
        one.reply("Tell me about tides", salt=("a",)).text
        != other.reply("Tell me about tides", salt=("a",)).text
    )
    assert (
        one.reply("Tell me about tides", salt=("a",)).text
        != one.reply("Tell me about tides", salt=("b",)).text
    )
    assert one.reply("Tell me about tides", salt=("a",)).text.startswith(
        "Here is what I can tell you about tides"
    )

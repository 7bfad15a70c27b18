"""Every example embedded in a spec validates against the schema it sits under."""

from __future__ import annotations

import pytest
from _spec_helpers import (
    SSE_MEDIA_TYPE,
    EmbeddedExample,
    iter_embedded_examples,
    load_spec,
    schema_errors,
    spec_names,
    sse_event_errors,
)

from mockserver.resources import PROVIDER_IDS


def _example_errors(name: str, example: EmbeddedExample) -> list[str]:
    spec = load_spec(name)
    if example.schema_pointer is None:
        return ["no schema to validate against"]
    if example.media_type != SSE_MEDIA_TYPE:
        return schema_errors(spec, example.schema_pointer, example.value)
    # A text/event-stream example is one event object or a list of events.
    events = example.value if isinstance(example.value, list) else [example.value]
    return [
        f"event {index}: {message}"
        for index, event in enumerate(events)
        for message in sse_event_errors(spec, example.schema_pointer, event)
    ]


@pytest.mark.parametrize("name", spec_names())
def test_embedded_examples_validate(name: str) -> None:
    examples = list(iter_embedded_examples(load_spec(name)))
    if name in PROVIDER_IDS:
        assert examples, f"{name}: no embedded examples (the document's examples belong under `examples:`)"
    problems = [
        f"#{example.pointer} (schema #{example.schema_pointer}): {message}"
        for example in examples
        for message in _example_errors(name, example)
    ]
    if problems:
        pytest.fail(f"{name}: {len(problems)} invalid example(s):\n  " + "\n  ".join(problems))

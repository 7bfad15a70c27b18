"""Recipe: a streamed chat completion cut mid-way (the connection drops after 3 events)."""

import openai
import pytest

CUT = {"provider": "spaceai", "operation_id": "createChatCompletion", "cut_after_events": 3}
STORY = [{"role": "user", "content": "Tell me a story"}]


@pytest.mark.aigen_mock(faults=[CUT])
def test_a_cut_stream_raises_after_the_chunks_it_got(aigen_spaceai_openai):
    stream = aigen_spaceai_openai.chat.completions.create(model="gpt-4o", messages=STORY, stream=True)
    received = []

    def read_all():
        for chunk in stream:
            received.append(chunk)

    with pytest.raises(openai.APIConnectionError):
        read_all()
    assert len(received) == 3  # what your client shows before it reports the broken stream


def test_the_fault_applies_once(aigen_mock, aigen_spaceai_openai):
    aigen_mock.fault(**CUT)  # the same fault, injected from the test body
    with pytest.raises(openai.APIConnectionError):
        list(aigen_spaceai_openai.chat.completions.create(model="gpt-4o", messages=STORY, stream=True))
    chunks = list(aigen_spaceai_openai.chat.completions.create(model="gpt-4o", messages=STORY, stream=True))
    assert chunks[-1].choices[0].finish_reason == "stop"

"""Every generative task on a tokenizer with a chat template: the task text is the user turn, and
the answer prefix (the cue the model continues) opens the assistant turn, as RULER renders it."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import tiny_tokenizer

from ropebench.tasks import expand_tasks, get_task
from ropebench.tasks.base import GenerativeTask

FIXTURES = Path(__file__).parent / "fixtures"
TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}<|end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)
ASSISTANT = "<|end|>\n<|assistant|>\n"
OPTIONS = {
    "haystack": "pydoc",
    "example_length": 0,  # vt: the test tokenizer spends ~3x the tokens of a real one
    "shots": 0,  # cwe
    "squad_path": str(FIXTURES / "squad_dev_tiny.json"),
    "hotpotqa_path": str(FIXTURES / "hotpot_dev_distractor_tiny.json"),
    "depths": [50],  # niah grid
}
GENERATIVE = [n for n in expand_tasks(["ruler", "niah", "passkey"])
              if isinstance(get_task(n), GenerativeTask)]


@pytest.fixture(scope="module")
def tokenizers():
    plain, chat = tiny_tokenizer(), tiny_tokenizer()
    chat.chat_template = TEMPLATE
    return plain, chat


def _samples(task, tokenizer, chat):
    # The tight fill draws each sample from its own generator, so the chat and plain builds hold
    # the same needles (the reference fill shares one stream with the token-count search).
    options = {k: v for k, v in {**OPTIONS, "fill": "tight"}.items() if k in task.prompt_options()}
    return task.samples(tokenizer, 2048, 1, 0, chat=chat, max_new_tokens=16, **options)


@pytest.mark.parametrize("name", GENERATIVE)
def test_chat_rendering_puts_the_answer_prefix_in_the_assistant_turn(name, tokenizers):
    plain, chat = tokenizers
    task = get_task(name)
    try:
        (flat,) = _samples(task, plain, False)[:1]
        (wrapped,) = _samples(task, chat, True)[:1]
    except Exception as err:  # noqa: BLE001  (a task that needs data this machine lacks)
        if "download" in str(err).lower() or "offline" in str(err).lower():
            pytest.skip(str(err))
        raise
    prompt = wrapped.prompt
    assert prompt.startswith("<|user|>\n") and prompt.endswith(ASSISTANT), name
    user = prompt[len("<|user|>\n"): -len(ASSISTANT)]
    assert wrapped.input_text == prompt + wrapped.answer_prefix
    assert "<|" not in wrapped.answer_prefix
    # The same cue as without the template, now opening the assistant's reply, not in the user turn.
    assert wrapped.answer_prefix.strip() == flat.answer_prefix.strip(), name
    if wrapped.answer_prefix.strip():
        assert not user.rstrip().endswith(wrapped.answer_prefix.strip()), name
    # The template is the tokenizer's own, applied to the task text as one user message.
    rendered = chat.apply_chat_template([{"role": "user", "content": user}], tokenize=False,
                                        add_generation_prompt=True)
    assert rendered == prompt


def test_passkey_cue_opens_the_assistant_turn(tokenizers):
    plain, chat = tokenizers
    task = get_task("passkey")
    (wrapped,) = _samples(task, chat, True)
    assert wrapped.input_text.endswith(ASSISTANT + "The pass key is")
    assert wrapped.prompt.rstrip(ASSISTANT).endswith("What is the pass key?")
    (flat,) = _samples(task, plain, False)
    # Without a template the prompt reads as before: question and cue on one line.
    assert flat.input_text.endswith("What is the pass key? The pass key is")


def test_chat_true_without_a_template_is_refused(tokenizers):
    from ropebench.errors import RopebenchError

    plain, _ = tokenizers
    with pytest.raises(RopebenchError, match="no chat template"):
        _samples(get_task("passkey"), plain, True)


def _cwe(tokenizer, **options):
    return get_task("cwe").samples(tokenizer, 2048, 2, 0, max_new_tokens=16, fill="tight",
                                   **options)


def test_cwe_example_is_its_own_exchange_under_a_chat_template(tokenizers):
    """The reference wraps the solved example in the model's template by itself, answer after
    the answer prefix: under a chat template, a user turn and a model turn before the task."""
    import re
    from collections import Counter

    from ropebench.tasks.prompting import count_tokens

    _, chat = tokenizers
    for sample in _cwe(chat):
        assert sample.metadata["example_turn"] == "separate"
        example, rest = sample.prompt.split(ASSISTANT, 1)
        answer, task = rest.split("<|end|>\n", 1)
        question = example.removeprefix("<|user|>\n")
        assert question.startswith("Below is a numbered list of words.")
        assert question.endswith("Question: What are the 10 most common words in the above list?")
        # The model turn: the answer prefix, then the example's own 10 most common words.
        assert answer.startswith(sample.answer_prefix + " 1. ")
        listed = re.findall(r"\d+\. (\S+)", answer[len(sample.answer_prefix):])
        counts = Counter(re.findall(r"\d+\. (\S+)", question.split("\nQuestion:")[0]))
        assert len(listed) == 10 and set(listed) == {w for w, _ in counts.most_common(10)}
        assert task.startswith("<|user|>\nBelow is a numbered list of words.")
        assert task.endswith(ASSISTANT) and task.count("<|user|>") == 1
        assert sample.prompt == chat.apply_chat_template(
            [{"role": "user", "content": question}, {"role": "assistant", "content": answer},
             {"role": "user", "content": task[len("<|user|>\n"):-len(ASSISTANT)]}],
            tokenize=False, add_generation_prompt=True)
        assert count_tokens(chat, sample.input_text) + sample.max_new_tokens <= 2048


def test_cwe_inline_example_stays_in_the_task_turn(tokenizers):
    plain, chat = tokenizers
    (inline, _) = _cwe(chat, example_turn="inline")
    assert inline.metadata["example_turn"] == "inline"
    assert inline.prompt.count("<|user|>") == 1 and inline.prompt.count("<|assistant|>") == 1
    assert inline.prompt.count("Below is a numbered list of words.") == 2
    # Without a template the example always leads the task text, whatever the option says.
    (flat, _) = _cwe(plain)
    assert flat.metadata["example_turn"] == "inline"
    assert flat.prompt.count("Below is a numbered list of words.") == 2
    assert "<|" not in flat.prompt

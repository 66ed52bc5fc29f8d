"""Haystack sources: built-ins, folders, the essay lookup, cached token streams."""

from __future__ import annotations

import urllib.request
from pathlib import Path

import pytest
from helpers import tiny_tokenizer

from ropebench.errors import RopebenchError
from ropebench.tasks import haystacks
from ropebench.tasks.haystacks import NOISE_LINE, Haystack, get_haystack, split_sentences

ESSAYS = Path("/work/shared/data/paul_graham_essays")


def test_noise_is_the_ruler_line_repeated():
    stack = get_haystack("noise")
    assert stack.documents[0].split("\n")[:2] == [NOISE_LINE, NOISE_LINE]
    assert (
        NOISE_LINE
        == "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again."
    )


def test_pydoc_is_offline_and_sizeable():
    stack = get_haystack("pydoc")
    assert len(stack.documents) > 50
    assert len(stack.words) > 50_000


def test_first_words_cycles_when_the_haystack_is_short():
    stack = Haystack("tiny", ("one two three",))
    assert stack.first_words(2) == "one two"
    assert stack.first_words(7) == "one two three one two three one"


def test_split_sentences():
    assert split_sentences("A b. C d!  E f? G") == ["A b.", "C d!", "E f?", "G"]
    assert split_sentences("   ") == []


def test_split_sentences_follows_punkt():
    """nltk punkt's sentences on these (RULER splits the essays with punkt)."""
    cases = {
        # closing quotes and brackets stay with the sentence they close
        'of "addictive." That usage. (Symposium.) In it': ['of "addictive."', "That usage.",
                                                           "(Symposium.)", "In it"],
        # with no space, an opening mark starts the next sentence ("." + "[2]", ")Thanks")
        "than good.[2] Technology. used to those.)Thanks to Sam. this urge.\"Paul said":
            ["than good.", "[2] Technology.", "used to those.", ")Thanks to Sam.", "this urge.",
             '"Paul said'],
        # initials, titles and ellipses end none; the words A and I, numbers and lowercase do
        "John D. Rockefeller met Mr. Smith... Then plan A. Next 1990s. Then the end. and then":
            ["John D. Rockefeller met Mr. Smith... Then plan A.", "Next 1990s.", "Then the end.",
             "and then"],
        "objects.)4. A new": ["objects.)4.", "A new"],
    }
    for text, sentences in cases.items():
        assert split_sentences(text) == sentences


def test_folder_haystack(tmp_path):
    (tmp_path / "b.txt").write_text("Second file.")
    (tmp_path / "a.txt").write_text("First file.")
    stack = get_haystack(str(tmp_path))
    assert stack.documents == ("First file.", "Second file.")


def test_empty_folder_and_unknown_name_fail_clearly(tmp_path):
    with pytest.raises(RopebenchError, match="no .txt files"):
        haystacks.folder_haystack(tmp_path)
    with pytest.raises(RopebenchError, match="unknown haystack"):
        get_haystack("no-such-haystack")


def test_essay_offline_says_how_to_point_at_a_folder(tmp_path, monkeypatch):
    monkeypatch.delenv(haystacks.ESSAY_ENV, raising=False)
    monkeypatch.setenv("ROPEBENCH_CACHE", str(tmp_path))

    def offline(*args, **kwargs):
        raise OSError("network unreachable")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(RopebenchError, match=haystacks.ESSAY_ENV):
        haystacks.essay_haystack()


def test_essay_from_env_folder(monkeypatch):
    if not ESSAYS.is_dir():
        pytest.skip("shared essay folder not available")
    monkeypatch.setenv(haystacks.ESSAY_ENV, str(ESSAYS))
    stack = haystacks.essay_haystack()
    assert stack.name == "essay" and len(stack.documents) == 49


def test_token_stream_is_cached_and_windows_wrap():
    tok = tiny_tokenizer()
    stack = Haystack("small", ("alpha beta gamma", "delta"))
    stream = stack.token_stream(tok)
    assert stack.token_stream(tok) is stream
    window = stack.token_window(tok, len(stream) - 2, 5)
    assert window == stream[-2:] + stream[:3]


def test_essay_download_keeps_only_plain_names_and_lands_whole(tmp_path, monkeypatch):
    import io
    import json

    from ropebench.tasks import haystacks

    listing = [
        {"name": "good.txt", "download_url": "https://example.org/good.txt"},
        {"name": "../escape.txt", "download_url": "https://example.org/escape.txt"},
        {"name": "sub/nested.txt", "download_url": "https://example.org/nested.txt"},
        {"name": "plain.txt", "download_url": "file:///etc/passwd"},
        {"name": "notes.md", "download_url": "https://example.org/notes.md"},
    ]
    fetched = []

    def fake_urlopen(url, timeout):
        fetched.append(url)
        body = json.dumps(listing).encode() if url == haystacks.ESSAY_LISTING_URL else b"An essay."
        return io.BytesIO(body)

    monkeypatch.setattr(haystacks.urllib.request, "urlopen", fake_urlopen)
    target = tmp_path / "cache" / "essays"
    haystacks.download_essays(target)
    assert sorted(p.name for p in target.iterdir()) == ["good.txt"]
    assert fetched == [haystacks.ESSAY_LISTING_URL, "https://example.org/good.txt"]
    assert not (tmp_path / "escape.txt").exists() and not (tmp_path / "cache" / "escape.txt").exists()
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["essays"]


def test_interrupted_essay_download_leaves_no_haystack(tmp_path, monkeypatch):
    import io
    import json

    from ropebench.errors import RopebenchError
    from ropebench.tasks import haystacks

    listing = [{"name": f"{i}.txt", "download_url": f"https://example.org/{i}.txt"} for i in range(3)]

    def flaky_urlopen(url, timeout):
        if url.endswith("2.txt"):
            raise OSError("connection reset")
        return io.BytesIO(json.dumps(listing).encode() if url == haystacks.ESSAY_LISTING_URL
                          else b"An essay.")

    monkeypatch.setattr(haystacks.urllib.request, "urlopen", flaky_urlopen)
    target = tmp_path / "essays"
    with pytest.raises(RopebenchError, match="cannot download the essay haystack"):
        haystacks.download_essays(target)
    assert not target.exists()  # the next run downloads again instead of using two essays

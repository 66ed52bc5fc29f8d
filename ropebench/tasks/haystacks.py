"""Haystacks: the filler text that needles are hidden in and that perplexity is measured on.

Four sources, all plain lists of documents:
- `noise`: RULER's repeated line ("The grass is green. ..."), the classic passkey filler.
- `pydoc`: the Python documentation topics shipped with the standard library (offline, always there).
- `essay`: Paul Graham's essays (RULER's and the needle-in-a-haystack test's haystack), read from
  `$ROPEBENCH_ESSAY_DIR`, else from `~/.cache/ropebench/essays`, else downloaded there when online.
- any folder of `.txt` files.

Tokenizing a haystack is the slow part of building thousands of samples, so each haystack caches
its token stream per tokenizer.
"""

from __future__ import annotations

import functools
import json
import os
import re
import urllib.request
import weakref
from dataclasses import dataclass, field
from pathlib import Path

from ropebench.content import files_sha256
from ropebench.errors import RopebenchError

# RULER's noise haystack line (also the passkey filler of YaRN / landmark attention).
NOISE_LINE = (
    "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again."
)

ESSAY_ENV = "ROPEBENCH_ESSAY_DIR"
# The essay files used by the needle-in-a-haystack test (gkamradt/LLMTest_NeedleInAHaystack).
ESSAY_LISTING_URL = (
    "https://api.github.com/repos/gkamradt/LLMTest_NeedleInAHaystack/contents/"
    "needlehaystack/PaulGrahamEssays"
)

# Where a sentence ends, after nltk's punkt (RULER's splitter; its English model is data that is
# not installed offline). On the essays this agrees with punkt on all but ~13 of 6,400
# boundaries, where a split only on whitespace after `.!?` misses ~390: each miss can move a needle
# by a sentence, changing a draw's token count, which tips the fit searches' probes.
_SENTENCE_END = re.compile(
    r"""
    (?<!\.)                                   # not inside an ellipsis
    (?: [!?]
      # a period, unless after an initial (one capital letter but the words A and I) or a title
      | (?<!\b[B-HJ-Z])(?<!\bMr)(?<!\bMrs)(?<!\bMs)(?<!\bDr)(?<!\bSt)(?<!\bJr)(?<!\bSr)(?<!\bvs)
        \.(?!\.)
    )
    (?: (?P<close>["')\]}]*)\s+(?=\S)           # then whitespace; closing marks stay with it
      | (?=[\[("'*]|\)(?!\d))                   # or, with no space, an opening mark ("good.[2] It")
    )
    """,
    re.VERBOSE,
)


def cache_dir() -> Path:
    return Path(os.environ.get("ROPEBENCH_CACHE", Path.home() / ".cache" / "ropebench"))


def split_sentences(text: str) -> list[str]:
    """The sentences of `text`, a stand-in for nltk's punkt (see `_SENTENCE_END`). Joined with
    spaces, as RULER rejoins them, they give the text back, plus a space where a sentence ended
    with no whitespace after it."""
    text = text.strip()
    sentences, start = [], 0
    for end in _SENTENCE_END.finditer(text):
        sentences.append(text[start : end.start() + 1 + len(end["close"] or "")])
        start = end.end()
    return [*sentences, text[start:]] if text else []


@dataclass(eq=False)
class Haystack:
    """A named, ordered list of documents with cached word and token views."""

    name: str
    documents: tuple[str, ...]
    _tokens: weakref.WeakKeyDictionary = field(
        default_factory=weakref.WeakKeyDictionary, init=False, repr=False
    )

    def __post_init__(self) -> None:
        if not any(doc.strip() for doc in self.documents):
            raise RopebenchError(f"haystack {self.name!r} is empty; give a folder with .txt files")

    @functools.cached_property
    def text(self) -> str:
        return "\n\n".join(self.documents)

    @functools.cached_property
    def words(self) -> list[str]:
        # As RULER: collapse all whitespace, split on single spaces.
        return re.sub(r"\s+", " ", self.text).strip().split(" ")

    @functools.cached_property
    def raw_words(self) -> list[str]:
        """The words of the documents concatenated raw, as RULER's essay file does (the last word
        of one document runs into the first of the next when no whitespace separates them)."""
        return re.sub(r"\s+", " ", "".join(self.documents)).strip().split(" ")

    def first_words(self, n: int, *, raw: bool = False) -> str:
        """The first `n` words joined by spaces, cycling through the haystack when it is short;
        `raw`: of the raw concatenation (RULER) rather than documents separated by a blank line."""
        words = self.raw_words if raw else self.words
        repeats, rest = divmod(n, len(words))
        return " ".join(words * repeats + words[:rest])

    def token_stream(self, tokenizer) -> list[int]:
        """All documents tokenized once (no special tokens), separated by a blank line."""
        try:
            return self._tokens[tokenizer]
        except KeyError:
            pass
        sep = tokenizer("\n\n", add_special_tokens=False)["input_ids"]
        stream: list[int] = []
        encoded = tokenizer(list(self.documents), add_special_tokens=False)["input_ids"]
        for ids in encoded:
            stream.extend(ids)
            stream.extend(sep)
        self._tokens[tokenizer] = stream
        return stream

    def token_window(self, tokenizer, start: int, n: int) -> list[int]:
        """`n` tokens of the stream from `start`, wrapping around the end."""
        stream = self.token_stream(tokenizer)
        start %= len(stream)
        out = stream[start : start + n]
        while len(out) < n:
            out.extend(stream[: n - len(out)])
        return out


def noise_haystack() -> Haystack:
    return Haystack("noise", ("\n".join([NOISE_LINE] * 2000),))


def pydoc_haystack() -> Haystack:
    import pydoc_data.topics

    topics = pydoc_data.topics.topics
    return Haystack("pydoc", tuple(topics[key] for key in sorted(topics)))


def _folder_files(folder: str | Path) -> list[Path]:
    path = Path(folder).expanduser()
    return sorted(p for p in path.glob("*.txt") if p.is_file()) if path.is_dir() else []


def haystack_files(name_or_folder: str) -> list[Path] | None:
    """The user's files a haystack reads: a folder's, or `$ROPEBENCH_ESSAY_DIR`'s for `essay`;
    None for the built-in text (fixed by the ropebench and Python versions)."""
    if name_or_folder == "essay":
        folder = os.environ.get(ESSAY_ENV)
        return _folder_files(folder) if folder else None
    if name_or_folder in _BUILTIN or not Path(name_or_folder).expanduser().is_dir():
        return None
    return _folder_files(name_or_folder)


def haystack_identity(name_or_folder: str) -> list[list[str]] | None:
    """The content hashes of `haystack_files`: results built on a haystack carry them, so a
    haystack rewritten in place, or `$ROPEBENCH_ESSAY_DIR` pointed elsewhere, never reuses them."""
    files = haystack_files(name_or_folder)
    return None if files is None else files_sha256((p.name, p) for p in files)


def folder_haystack(folder: str | Path, name: str | None = None) -> Haystack:
    path = Path(folder).expanduser()
    files = _folder_files(path)
    if not files:
        raise RopebenchError(
            f"no .txt files in {path}; point the haystack at a folder of text files"
        )
    docs = tuple(f.read_text(encoding="utf-8", errors="replace") for f in files)
    return Haystack(name or path.name, docs)


# A file name from the remote listing is used only if it is a plain name (no folder, no `..`).
SAFE_ESSAY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*\.txt")


def download_essays(target: Path) -> Path:
    """Fetch the essays into `target` (one .txt per essay); needs the network.

    The essays land in a sibling folder first and move into place whole, so an interrupted
    download never leaves a partial haystack that a later run would take for the full one."""
    import shutil

    partial = target.with_name(target.name + ".partial")
    try:
        with urllib.request.urlopen(ESSAY_LISTING_URL, timeout=20) as response:
            listing = json.load(response)
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        for entry in listing if isinstance(listing, list) else []:
            name, url = str(entry.get("name", "")), str(entry.get("download_url", ""))
            if not SAFE_ESSAY_NAME.fullmatch(name) or not url.startswith("https://"):
                continue  # a sub-folder, a path that climbs out, or a link that is not https
            with urllib.request.urlopen(url, timeout=20) as response:
                (partial / name).write_bytes(response.read())
    except (OSError, ValueError) as err:
        raise RopebenchError(
            f"cannot download the essay haystack ({err}); set {ESSAY_ENV}=FOLDER (a folder of .txt "
            "essays) or use another haystack such as `pydoc`"
        ) from err
    if not any(partial.glob("*.txt")):
        raise RopebenchError(
            f"the essay listing at {ESSAY_LISTING_URL} names no .txt essays; set {ESSAY_ENV}=FOLDER "
            "(a folder of .txt essays) or use another haystack such as `pydoc`"
        )
    shutil.rmtree(target, ignore_errors=True)
    partial.rename(target)
    return target


def essay_haystack() -> Haystack:
    folder = os.environ.get(ESSAY_ENV)
    if folder:
        return folder_haystack(folder, "essay")
    cached = cache_dir() / "essays"
    if not any(cached.glob("*.txt")):
        download_essays(cached)
    return folder_haystack(cached, "essay")


_BUILTIN = {"noise": noise_haystack, "pydoc": pydoc_haystack, "essay": essay_haystack}


@functools.lru_cache(maxsize=16)
def get_haystack(name_or_folder: str) -> Haystack:
    """`noise`, `pydoc`, `essay`, or a folder of .txt files (cached, so token streams persist)."""
    if name_or_folder in _BUILTIN:
        return _BUILTIN[name_or_folder]()
    if Path(name_or_folder).expanduser().is_dir():
        return folder_haystack(name_or_folder)
    raise RopebenchError(
        f"unknown haystack {name_or_folder!r}; use one of {', '.join(_BUILTIN)} or a folder of .txt files"
    )

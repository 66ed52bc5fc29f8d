"""The reference corpus: English text that ships with every Python install, no download needed.

- `train`: docstrings and comments of the standard library's own modules (tens of MB).
- `heldout`: the language reference topics in `pydoc_data.topics` (never trained on), which the
  `pydoc` haystack and the perplexity evaluations read.
"""

from __future__ import annotations

import ast
import functools
import io
import json
import os
import platform
import re
import sysconfig
import tokenize
from pathlib import Path

# Modules whose text is mostly data or generated tables, not prose.
_SKIP_PARTS = {"pydoc_data", "encodings", "site-packages"}
_MIN_CHARS = 200


def _stdlib_files() -> list[Path]:
    root = Path(sysconfig.get_paths()["stdlib"])
    files = [
        p for p in root.rglob("*.py") if not (_SKIP_PARTS & set(p.relative_to(root).parts))
    ]
    return sorted(files)


def _clean(text: str) -> str:
    text = re.sub(r"[ \t]+", " ", text)
    return re.sub(r"\n\s*\n+", "\n\n", text).strip()


def _module_text(source: str) -> str:
    """Docstrings, then comment blocks, of one module, as paragraphs."""
    parts: list[str] = []
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return ""
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            doc = ast.get_docstring(node)
            if doc and len(doc) > 40:
                parts.append(doc)
    block: list[str] = []
    try:
        for tok in tokenize.generate_tokens(io.StringIO(source).readline):
            if tok.type == tokenize.COMMENT:
                line = tok.string.lstrip("#").strip()
                if line and not line.startswith(("!", "-*-", "noqa", "type:", "pragma")):
                    block.append(line)
            elif tok.type not in (tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT):
                if len(block) >= 2:
                    parts.append(" ".join(block))
                block = []
    except (tokenize.TokenError, IndentationError, SyntaxError):
        pass
    return _clean("\n\n".join(parts))


@functools.lru_cache(maxsize=2)
def documents(split: str = "train") -> tuple[str, ...]:
    """The corpus as documents (one per stdlib module, or one per pydoc topic)."""
    if split == "heldout":
        import pydoc_data.topics

        texts = (_clean(t) for _, t in sorted(pydoc_data.topics.topics.items()))
        return tuple(t for t in texts if len(t) >= _MIN_CHARS)
    if split != "train":
        raise ValueError(f"unknown split {split!r}; use 'train' or 'heldout'")
    # Parsing ~1,000 modules takes ~20 s: keep the result per Python version.
    cache = _cache_dir() / f"corpus-train-{platform.python_version()}.json"
    if cache.is_file():
        return tuple(json.loads(cache.read_text()))
    docs = []
    for path in _stdlib_files():
        text = _module_text(path.read_text(encoding="utf-8", errors="replace"))
        if len(text) >= _MIN_CHARS:
            docs.append(text)
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(docs))
    tmp.replace(cache)
    return tuple(docs)


def _cache_dir() -> Path:
    return Path(os.environ.get("ROPEBENCH_CACHE", Path.home() / ".cache" / "ropebench"))

"""A model folder's chat template, tried before any weights load.

A template that raises (a `raise_exception` for a turn layout it rejects, a Jinja error) would
otherwise stop a run at its first prompt, after the weights loaded, or mid-comparison."""

from __future__ import annotations

from pathlib import Path

from ropebench.tasks.base import GenerativeTask, TaskOptions
from ropebench.tasks.prompting import check_chat_template
from ropebench.tasks.registry import get_task


def check_folder_template(model_dir: str | Path, resolved: dict[str, TaskOptions],
                          trust_remote_code: bool = False) -> None:
    """Render one exchange with the folder's tokenizer for every `chat` choice the tasks that
    build prompts make (`resolved`: task name -> options). Only the tokenizer is read, and only
    when the folder ships a template."""
    folder = Path(model_dir)
    chats = {name: getattr(options.values, "chat", None) for name, options in resolved.items()}
    choices = {chat for name, chat in chats.items()
               if isinstance(get_task(name), GenerativeTask) and chat is not False}
    config = folder / "tokenizer_config.json"
    ships = folder.is_dir() and (
        (folder / "chat_template.jinja").is_file() or (folder / "chat_template.json").is_file()
        or (config.is_file() and "chat_template" in config.read_text(errors="replace")))
    if not choices or not ships:
        return
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=trust_remote_code)
    except Exception:  # noqa: BLE001  (loading the model reports a broken tokenizer in one line)
        return
    for chat in choices:
        check_chat_template(tokenizer, chat)

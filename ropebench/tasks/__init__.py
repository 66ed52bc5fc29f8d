"""What is asked and how it is scored: RULER, needles, perplexity, passkey, short-context tasks."""

from ropebench.tasks.base import GenerativeTask, MeasuredTask, Row, Sample, Task
from ropebench.tasks.registry import GROUPS, available_tasks, expand_tasks, get_task

__all__ = [
    "GROUPS",
    "GenerativeTask",
    "MeasuredTask",
    "Row",
    "Sample",
    "Task",
    "available_tasks",
    "expand_tasks",
    "get_task",
]

"""KernelBench-style problems: the task model, the bundled suite, loaders and size presets."""

from .check import Judged, TaskReport, check_task
from .loaders import SUITES, load_tasks
from .shrink import Budget, NotShrinkable, shrink
from .task import FULL, SMALL, Task, TaskError

__all__ = [
    "FULL", "SMALL", "SUITES", "Budget", "Judged", "NotShrinkable", "Task", "TaskError", "TaskReport",
    "check_task", "load_tasks", "shrink",
]

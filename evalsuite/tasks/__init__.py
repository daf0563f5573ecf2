"""Task adapters: golden sets, BEIR folders, STS files and MTEB tasks behind one interface."""

from __future__ import annotations

from evalsuite.tasks.base import STSData, Task, TaskMetadata, content_hash
from evalsuite.tasks.beir import BeirTask, drop_identical_ids
from evalsuite.tasks.golden import GoldenSetTask, load_golden_set
from evalsuite.tasks.sts import STSTask, evaluate_sts, load_sts

__all__ = [
    "BeirTask",
    "GoldenSetTask",
    "STSData",
    "STSTask",
    "Task",
    "TaskMetadata",
    "content_hash",
    "drop_identical_ids",
    "evaluate_sts",
    "load_golden_set",
    "load_sts",
]

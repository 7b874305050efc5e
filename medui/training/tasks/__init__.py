"""Task kinds as plug-ins: the dict below is the whole discovery mechanism. Add a TaskKind subclass, list it here."""

from __future__ import annotations

from medui.training.tasks.base import Built, TaskKind
from medui.training.tasks.ecg import EcgTask
from medui.training.tasks.image import ImageTask
from medui.training.tasks.mlm import MlmTask
from medui.training.tasks.ner import NerTask

TASK_KINDS: dict[str, type[TaskKind]] = {"ecg": EcgTask, "image": ImageTask, "mlm": MlmTask, "ner": NerTask}

__all__ = ["TASK_KINDS", "Built", "TaskKind", "get_task"]


def get_task(name: str) -> TaskKind:
    return TASK_KINDS[name]()

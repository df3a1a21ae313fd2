"""The engine: projects, runs, sets, executors, provenance. It knows nothing of tomography."""

from tomoforge.engine.executors import ExecutorConfig
from tomoforge.engine.project import InputPointer, Project, ProjectError
from tomoforge.engine.protocol import (
    InputSpec,
    ParamsError,
    Protocol,
    ProtocolParams,
    Task,
    param,
)
from tomoforge.engine.runner import execute_run
from tomoforge.engine.sets import ItemSet, origin_of

__all__ = [
    "ExecutorConfig",
    "InputPointer",
    "Project",
    "ProjectError",
    "InputSpec",
    "ParamsError",
    "Protocol",
    "ProtocolParams",
    "Task",
    "param",
    "execute_run",
    "ItemSet",
    "origin_of",
]

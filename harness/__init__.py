"""kd-harness: task-specific knowledge distillation (Tang et al. 2019), measured for accuracy, size and
speed. `python -m harness` is the command line over the Python API (harness/api.py).

What a user or a plugin needs is importable from here (loaded on first use, so `import harness` stays light):
- running: `run` (and `plan`: what it would compute, running nothing), `predict`, `predict_texts`, `measure`,
  `load_model`, `ls`, and for results `compare`, `report`;
- registering: `STUDENTS`, `TEACHERS`, `TASKS`, `REFERENCES`, `StudentSpec`, `TeacherPlugin`, `ReferenceSpec`,
  `Task`, `register_metric` (README, Add your own student, teacher or task; harness/core/protocols.py);
- `HarnessError`, the one-line errors everything raises.
"""

from importlib import import_module

PUBLIC = {
    "run": "harness.api", "predict": "harness.api", "measure": "harness.api", "load_model": "harness.api",
    "ls": "harness.api", "compare": "harness.api", "report": "harness.api", "predict_texts": "harness.api",
    "plan": "harness.api",
    "STUDENTS": "harness.core.registry", "TEACHERS": "harness.core.registry",
    "TASKS": "harness.core.registry", "REFERENCES": "harness.core.registry", "StudentSpec": "harness.core.registry",
    "TeacherPlugin": "harness.core.registry", "ReferenceSpec": "harness.core.registry", "Task": "harness.data.tasks",
    "register_metric": "harness.core.metrics", "HarnessError": "harness.core.errors",
}
__all__ = sorted(PUBLIC)


def __getattr__(name: str):
    if name not in PUBLIC:
        raise AttributeError(f"module 'harness' has no attribute {name!r}")
    return getattr(import_module(PUBLIC[name]), name)

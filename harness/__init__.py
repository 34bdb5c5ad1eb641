"""kd-harness: task-specific knowledge distillation (Tang et al. 2019), measured for accuracy, size and
speed. The Python API is harness/api.py (`harness.run`, `harness.engine.predict`, `harness.speed.measure`,
`harness.load_model`, `harness.ls`); `python -m harness` is the command line over it."""

from harness.api import load_model, ls, measure, predict, run

__all__ = ["load_model", "ls", "measure", "predict", "run"]

"""The one place that imports plugin modules, so their registrations run. No folder scanning."""

import importlib

PLUGIN_MODULES = (
    "harness.tasks",
    "harness.pair_tasks",
    "harness.glue_tasks",
    "teachers.hf",
    "students.bilstm",
    "students.siamese",
    "teachers.reference",
    "students.elmo",
)


def load_plugins() -> None:
    for name in PLUGIN_MODULES:
        importlib.import_module(name)

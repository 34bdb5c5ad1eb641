"""A stage's code does not change behind its VERSION: cache keys hold the version, not the code, so a
stage edited without a bump would silently reuse entries the old code made.

tests/golden/stage_sources.json pins, for each stage of harness/engine/stages.py, its VERSION and the sha256
of the code it depends on (SOURCES there: files, or `file::name` for one top-level function or class;
file bytes, no normalising). A change of that code with the VERSION left alone fails here, naming the
files. Re-pin after deciding: bump the VERSION if the outputs change; if they do not, say why:

    .venv/bin/python tests/retake_golden.py stages [--reason "why the outputs are unchanged"]

A re-pin of changed code under the same VERSION is kept in the stage's `repins` with its reason, and a test here
reads them: the pin moves only with a version bump or a stated reason.

Reads harness/engine/stages.py as text (no torch import): this runs in a fraction of a second.
"""

from __future__ import annotations

import ast
import hashlib
import json
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STAGES = ROOT / "harness" / "engine" / "stages.py"
GOLDEN = ROOT / "tests" / "golden" / "stage_sources.json"
UPDATE = '.venv/bin/python tests/retake_golden.py stages --reason "..."'


def module_constant(path: Path, name: str):
    """The literal value assigned to `name` at the top level of `path` (f-strings over other constants allowed)."""
    tree = ast.parse(path.read_text())
    consts: dict[str, object] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            try:
                consts[node.targets[0].id] = _literal(node.value, consts)
            except ValueError:
                continue
    if name not in consts:
        raise AssertionError(f"{path.relative_to(ROOT)} has no literal top-level {name}")
    return consts[name]


def _literal(node: ast.AST, consts: dict[str, object]):
    if isinstance(node, ast.JoinedStr):  # f"{_HERE}teacher_stage"
        parts = []
        for v in node.values:
            if isinstance(v, ast.Constant):
                parts.append(str(v.value))
            elif isinstance(v, ast.FormattedValue) and isinstance(v.value, ast.Name) and v.value.id in consts:
                parts.append(str(consts[v.value.id]))
            else:
                raise ValueError("not a literal")
        return "".join(parts)
    if isinstance(node, ast.List):
        return [_literal(e, consts) for e in node.elts]
    if isinstance(node, ast.Dict):
        return {_literal(k, consts): _literal(v, consts) for k, v in zip(node.keys, node.values)}
    return ast.literal_eval(node)


def source_bytes(entry: str) -> bytes:
    """The bytes of a SOURCES entry: a file, or `file::name`, one top-level def or class (with decorators)."""
    file, _, name = entry.partition("::")
    path = ROOT / file
    if not path.is_file():
        raise AssertionError(f"SOURCES in harness/engine/stages.py names {file}, which does not exist: fix SOURCES there")
    data = path.read_bytes()
    if not name:
        return data
    lines = data.decode().splitlines(keepends=True)
    for node in ast.parse(data).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.name == name:
            first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            return "".join(lines[first - 1 : node.end_lineno]).encode()
    raise AssertionError(f"SOURCES in stages.py names {entry}, but {file} has no top-level {name}: fix SOURCES there")


def builtin_plugins(group: str) -> list[str]:
    """The files of this project's own plugin modules of an entry-point group (pyproject.toml), e.g.
    `students/bilstm.py` for kd_harness.students: the engine names none of them, so they are added here."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    modules = project.get("entry-points", {}).get(group, {}).values()
    return sorted(m.partition(":")[0].replace(".", "/") + ".py" for m in modules)


def current() -> dict[str, dict]:
    """Each stage's VERSION and the sha256 of each of its sources and of all of them together (the student
    stage's include the built-in students: another package's student bumps its StudentSpec.version)."""
    versions, sources = module_constant(STAGES, "VERSIONS"), module_constant(STAGES, "SOURCES")
    sources = {**sources, "student": [*sources["student"], *builtin_plugins("kd_harness.students")]}
    missing = sorted(set(versions) ^ set(sources))
    if missing:
        raise AssertionError(f"harness/engine/stages.py: VERSIONS and SOURCES must name the same stages; only in one: {missing}")
    out = {}
    for stage, version in versions.items():
        files = {entry: hashlib.sha256(source_bytes(entry)).hexdigest() for entry in sorted(set(sources[stage]))}
        total = hashlib.sha256("".join(f"{e}\0{h}\n" for e, h in files.items()).encode()).hexdigest()
        out[stage] = {"version": version, "sha256": total, "sources": files}
    return out


def problems(pinned: dict[str, dict], now: dict[str, dict]) -> list[str]:
    """What differs between the pinned file and the code, each with what to do."""
    out = []
    for stage in sorted(set(pinned) | set(now)):
        if stage not in now or stage not in pinned:
            out.append(f"stage {stage} is {'gone from' if stage not in now else 'new in'} harness/engine/stages.py's VERSIONS: "
                       f"run `{UPDATE}`")
            continue
        old, new = pinned[stage], now[stage]
        if old["version"] != new["version"]:
            if old["sha256"] == new["sha256"]:
                out.append(f"VERSIONS['{stage}'] is {new['version']} but {GOLDEN.relative_to(ROOT)} pins {old['version']}: "
                           f"run `{UPDATE}` to pin the bump")
            else:
                out.append(f"stage {stage} was bumped to VERSION {new['version']} and its code changed: run `{UPDATE}` "
                           "to pin both")
        elif old["sha256"] != new["sha256"]:
            changed = sorted(e for e in set(old["sources"]) | set(new["sources"])
                             if old["sources"].get(e) != new["sources"].get(e))
            out.append(f"stage {stage}'s code changed ({', '.join(changed)}) but VERSIONS['{stage}'] is still "
                       f"{new['version']}: if its outputs change, bump VERSIONS['{stage}'] in engine/stages.py (old cache "
                       f"entries are then recomputed), then run `{UPDATE}`; if they do not, just run `{UPDATE}`"
                       + ("; a student plugin's own file changes only its students: bump its StudentSpec version "
                          "(students/bag.py's register(..., version=)) instead" if stage == "student" else ""))
    return out


def test_stage_code_changes_come_with_a_version() -> None:
    """Each stage's pinned sources hash matches its code, or its VERSION and the pin are updated together."""
    assert GOLDEN.is_file(), f"{GOLDEN.relative_to(ROOT)} is missing: run `{UPDATE}`"
    found = problems(json.loads(GOLDEN.read_text())["stages"], current())
    assert not found, "\n".join(found)


def test_every_teacher_plugin_is_a_source() -> None:
    """A built-in teacher plugin module is in the teacher stage's SOURCES (a new teacher file not listed
    would go unwatched); built-in students are added to the student stage's by `current`."""
    sources = module_constant(STAGES, "SOURCES")
    for file in builtin_plugins("kd_harness.teachers"):
        assert any(e.partition("::")[0] == file for e in sources["teacher"]), \
            f"{file} registers a teacher plugin: add it to SOURCES['teacher'] in harness/engine/stages.py, then run `{UPDATE}`"
    assert builtin_plugins("kd_harness.students"), "pyproject.toml registers no built-in students"


def test_a_changed_source_is_named_with_what_to_do() -> None:
    """The failure names the stage, the changed file and both ways out."""
    now = current()
    pinned = json.loads(json.dumps(now))
    entry = next(iter(pinned["student"]["sources"]))
    pinned["student"]["sources"][entry] = "0" * 64
    pinned["student"]["sha256"] = "0" * 64
    (message,) = problems(pinned, now)
    assert message.startswith(f"stage student's code changed ({entry})")
    assert "bump VERSIONS['student'] in engine/stages.py" in message and UPDATE in message
    pinned = json.loads(json.dumps(now))
    pinned["label"]["version"] -= 1
    (message,) = problems(pinned, now)
    assert "VERSIONS['label']" in message and UPDATE in message


def test_each_pin_is_its_versions_or_a_stated_reason() -> None:
    """A stage's pinned code is the code its VERSION was pinned with, or a re-pin under that VERSION that says
    why the outputs did not change (a sentence, not a word): the pin never moves silently."""
    from golden_files import refuse_retake_switches
    refuse_retake_switches()
    for stage, pin in json.loads(GOLDEN.read_text())["stages"].items():
        repins = pin.get("repins", [])
        assert (repins[-1]["sha256"] if repins else pin["version_sha256"]) == pin["sha256"], \
            f"{GOLDEN.relative_to(ROOT)}: stage {stage}'s pin is neither its version's nor a stated re-pin: run `{UPDATE}`"
        for repin in repins:
            assert len(repin["reason"].split()) >= 4, f"stage {stage}: re-pin {repin['sha256'][:12]} has no stated reason"


def repinned(stage: str, old: dict, new: dict, reason: str) -> dict:
    """The pin `new` for `stage` with its history: a bump starts afresh; changed code under the same VERSION needs
    `reason` and is added to `repins`. Raises ValueError when the reason is missing or too short."""
    if old.get("version") != new["version"]:
        return {**new, "version_sha256": new["sha256"], "repins": []}
    history = {"version_sha256": old.get("version_sha256", old["sha256"]), "repins": old.get("repins", [])}
    if old["sha256"] == new["sha256"]:
        return {**new, **history}
    if len(reason.split()) < 4:
        raise ValueError(f"stage {stage}'s code changed under VERSION {new['version']}: bump VERSIONS['{stage}'] in "
                         "harness/engine/stages.py if its outputs change, else say why they do not with --reason "
                         '"..." (a sentence)')
    return {**new, **history, "repins": [*history["repins"], {"sha256": new["sha256"], "reason": reason}]}


def update(reason: str = "") -> None:
    """Write the pins (tests/retake_golden.py stages): every stage's, or nothing when one needs a reason it lacks."""
    now = current()
    before = json.loads(GOLDEN.read_text())["stages"] if GOLDEN.is_file() else {}
    pins = {stage: repinned(stage, before.get(stage, {}), pin, reason) for stage, pin in now.items()}
    GOLDEN.parent.mkdir(parents=True, exist_ok=True)
    GOLDEN.write_text(json.dumps({"about": "each stage's VERSION and the sha256 of its code (SOURCES in engine/stages.py); "
                                           "version_sha256 is the code its VERSION was pinned with, repins each change "
                                           "of code under that VERSION with why its outputs are unchanged; written by "
                                           "tests/retake_golden.py stages", "stages": pins},
                                 indent=2, sort_keys=True) + "\n")
    for stage, pin in pins.items():
        old = before.get(stage, {})
        state = "unchanged" if old.get("sha256") == pin["sha256"] and old.get("version") == pin["version"] else \
            f"version {old.get('version')} -> {pin['version']}" if old.get("version") != pin["version"] else \
            "code re-pinned (same version): " + pin["repins"][-1]["reason"]
        print(f"{stage}: {state}")
    print(f"wrote {GOLDEN.relative_to(ROOT)}")


if __name__ == "__main__":
    sys.exit(f"re-pin with `{UPDATE}`")

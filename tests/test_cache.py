"""Content keys, the partial/commit store, and stage reuse after a finished or killed run."""

from __future__ import annotations

import json
from pathlib import Path

from harness.core.config import AugmentConfig, StudentConfig
from harness.engine.cache import Store, content_key
from harness.engine.stages import cached


def test_key_ignores_dict_order() -> None:
    """Equal inputs give equal keys, whatever the order of dict keys."""
    a = content_key(cfg={"x": 1, "y": [1, 2]}, seed=3, path=Path("a/b"))
    b = content_key(seed=3, path=Path("a/b"), cfg={"y": [1, 2], "x": 1})
    assert a == b


def test_key_changes_with_any_config_field() -> None:
    """Changing any field of a dataclass config changes the key."""
    base = content_key(augment=AugmentConfig(), v=1)
    assert content_key(augment=AugmentConfig(), v=1) == base
    assert content_key(augment=AugmentConfig(p_mask=0.2), v=1) != base
    assert content_key(augment=AugmentConfig(ngram_max=4), v=1) != base
    assert content_key(augment=AugmentConfig(enabled=False), v=1) != base
    assert content_key(student=StudentConfig(), v=1) != content_key(student=StudentConfig(alpha=0.5), v=1)


def test_key_changes_with_stage_version() -> None:
    """Bumping a stage's code version invalidates its outputs."""
    assert content_key(augment=AugmentConfig(), v=1) != content_key(augment=AugmentConfig(), v=2)


def test_partial_survives_and_commit_renames(tmp_path: Path) -> None:
    """Work written to the partial folder survives until commit moves it into place."""
    store = Store(tmp_path)
    work = store.partial("augment", "k1")
    (work / "data.txt").write_text("x")
    assert store.partial("augment", "k1") == work and (work / "data.txt").read_text() == "x"
    assert not store.has("augment", "k1")
    final = store.commit("augment", "k1")
    assert final == store.path("augment", "k1") and store.has("augment", "k1")
    assert (final / "data.txt").read_text() == "x"
    assert not work.exists()


def test_cached_builds_once(tmp_path: Path) -> None:
    """The second call with the same key reuses the first's output."""
    store, calls = Store(tmp_path), []

    def build(work: Path) -> dict:
        calls.append(work)
        (work / "out.txt").write_text("done")
        return {"rows": 3}

    path1, meta1 = cached(store, "stage", "key", build)
    path2, meta2 = cached(store, "stage", "key", build)
    assert len(calls) == 1
    assert path1 == path2 and (path2 / "out.txt").read_text() == "done"
    assert meta1["cached"] is False and meta2["cached"] is True
    assert meta2["rows"] == 3 and meta2["key"] == "key"


def test_cached_resumes_from_killed_run(tmp_path: Path) -> None:
    """Files a killed run left in the partial folder are there when build runs again."""
    store = Store(tmp_path)
    (store.partial("label", "key") / "chunk0.npy").write_text("half done")
    seen: list[bool] = []

    def build(work: Path) -> dict:
        seen.append((work / "chunk0.npy").is_file())
        return {}

    path, meta = cached(store, "label", "key", build)
    assert seen == [True] and meta["cached"] is False
    assert (path / "chunk0.npy").read_text() == "half done"
    assert not (tmp_path / "label" / "key.partial").exists()


def test_a_resumed_stage_counts_the_killed_runs_time(tmp_path: Path) -> None:
    """A build that resumed a training returns the killed runs' `earlier_seconds`: the stage's wall time adds
    them (the time of this process alone understated a paper student resumed three times by 2,600 s)."""
    _, meta = cached(Store(tmp_path), "student", "key", lambda work: {"earlier_seconds": 500.0})
    assert 500.0 <= meta["seconds"] < 560.0 and "earlier_seconds" not in meta


def test_a_dry_run_reports_each_state_and_writes_nothing(tmp_path: Path) -> None:
    """A dry-run store's `cached` builds nothing and writes nothing: it records each entry as a run would find it
    (cached with the time it took, damaged and why, a killed run's work to resume, or to compute; an entry met twice
    is computed once), and returns that as the stage's meta."""
    store = Store(tmp_path)

    def build(work: Path) -> dict:
        (work / "out.txt").write_text("done")
        return {"rows": 3}

    _, done = cached(store, "stage", "done", build)
    cached(store, "stage", "broken", build)
    (store.path("stage", "broken") / "out.txt").write_text("changed")
    (store.partial("stage", "killed") / "half.txt").write_text("x" * 2_000_000)
    before = sorted((p, p.stat().st_mtime_ns) for p in tmp_path.rglob("*"))

    def must_not_run(work: Path) -> dict:
        raise AssertionError("a dry run built a stage")

    dry = Store(tmp_path, dry_run=True)
    metas = [cached(dry, "stage", key, must_not_run)[1] for key in ("done", "broken", "killed", "new", "new")]
    assert [m["state"] for m in metas] == ["cached", "damaged", "resumes", "to compute", "same as above"]
    assert dry.plan == metas and [m["key"] for m in metas] == ["done", "broken", "killed", "new", "new"]
    assert metas[0]["seconds"] == done["seconds"] and metas[0]["peak_rss_gb"] == done["peak_rss_gb"]
    assert "out.txt" in metas[1]["why"]
    assert metas[2]["why"].endswith("stage/killed.partial holds 2.0 MB")
    assert sorted((p, p.stat().st_mtime_ns) for p in tmp_path.rglob("*")) == before
    assert Store(tmp_path / "none", dry_run=True).state("stage", "k")["state"] == "to compute"
    assert not (tmp_path / "none").exists()


def test_cache_ls_names_each_entrys_runs_and_prune_keeps_what_runs_use(tmp_path: Path, capsys) -> None:
    """`cache ls` lists every folder in the pipeline's order with its size and the runs (beside the cache, by default)
    whose results.json use it; `cache prune --keep RUN` removes what that run does not use, and what no run can reuse."""
    from harness.cli import main

    cache = tmp_path / "runs" / "cache"
    store = Store(cache)

    def entry(stage: str, key: str, size: int) -> str:
        cached(store, stage, key, lambda work: (work / "x.bin").write_bytes(b"x" * size) and {})
        return key

    shared, old, new = entry("teacher", "t1", 3_000_000), entry("student", "s-old", 1_000_000), entry("student", "s-new", 500)
    (store.partial("label", "l9") / "half.npy").write_bytes(b"0" * 200_000)
    for run, keys in (("before", [shared, old]), ("after", [shared, new])):
        (tmp_path / "runs" / run).mkdir()
        stages = {f"stage{k}": {"key": key, "cached": False} for k, key in enumerate(keys)}
        (tmp_path / "runs" / run / "results.json").write_text(json.dumps({"tasks": {"sst2": {"stages": stages}}}))

    capsys.readouterr()  # (what making the entries printed)
    assert main(["cache", "ls", "--cache-dir", str(cache)]) == 0
    out = capsys.readouterr().out
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in out.splitlines()[2:6]]
    assert [(r[0], r[1], r[2], r[3], r[5]) for r in rows] == [
        ("teacher", "t1", "committed", "3.0", "after, before"), ("label", "l9.partial", "unfinished", "0.2", ""),
        ("student", "s-new", "committed", "0.0", "after"), ("student", "s-old", "committed", "1.0", "before")]
    assert "4 folders, 4.2 MB (teacher 1: 3.0 MB, label 1: 0.2 MB, student 2: 1.0 MB)" in out
    assert "0 committed entries (0.0 MB) are used by none of them" in out
    (tmp_path / "runs" / "notes").mkdir()
    (tmp_path / "runs" / "notes" / "results.json").write_text("[]")  # beside the cache, but not a run's: left out, named
    assert main(["cache", "ls", "--cache-dir", str(cache)]) == 0
    assert f"(left out, their results.json is not a run's: {tmp_path / 'runs' / 'notes'})" in capsys.readouterr().out
    assert main(["cache", "ls", "--cache-dir", str(cache), "--runs", str(tmp_path / "runs" / "after")]) == 0
    assert "1 committed entries (1.0 MB) are used by none of them" in capsys.readouterr().out

    assert main(["cache", "verify", "--cache-dir", str(cache), "--keep", str(tmp_path / "runs" / "after")]) == 2
    assert "--keep goes with `cache prune`, not `cache verify`" in capsys.readouterr().err
    assert main(["cache", "prune", "--cache-dir", str(cache), "--keep", str(tmp_path / "runs" / "nowhere")]) == 2
    assert "runs/nowhere/results.json: not a finished run's results" in capsys.readouterr().err
    assert store.has("student", old)  # nothing removed by a refused command

    assert main(["cache", "prune", "--cache-dir", str(cache), "--keep", str(tmp_path / "runs" / "after")]) == 0
    out = capsys.readouterr().out
    assert f"removed unused: {store.path('student', old)}: no run to keep uses it" in out
    assert "2 ok, 0 damaged, 1 unfinished, 0 leftover, 1 unused; removed 2 (1.2 MB)" in out
    assert sorted(p.name for p in store.entries()) == ["s-new", "t1"]


def test_a_plan_without_verify_reads_no_entry_file(tmp_path: Path) -> None:
    """The plan a run makes at its start (verify=False) takes a committed entry for cached without hashing its files:
    a damaged one is found, and recomputed, when the run reaches it."""
    store = Store(tmp_path)
    cached(store, "stage", "k", lambda work: (work / "x.bin").write_bytes(b"x") and {})
    (store.path("stage", "k") / "x.bin").write_bytes(b"y")
    assert Store(tmp_path, dry_run=True).state("stage", "k")["state"] == "damaged"
    assert Store(tmp_path, dry_run=True, verify=False).state("stage", "k")["state"] == "cached"
    (store.path("stage", "k") / "meta.json").unlink()  # unverified, a missing meta.json still reads as damaged
    assert Store(tmp_path, dry_run=True, verify=False).state("stage", "k")["state"] == "damaged"
    (store.path("stage", "k") / "meta.json").write_text("[]")
    assert Store(tmp_path, dry_run=True, verify=False).state("stage", "k")["state"] == "damaged"

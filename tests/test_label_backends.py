"""Labelling through ONNX Runtime (fp32, int8): the labels' measured distance from the PyTorch teacher's
is recorded, and is the true one."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from cli_runner import harness

SETS = ["teacher.name=hf_tiny", "train_limit=300", "dev_limit=100", "augment.n_iter=2", "measure.enabled=false",
        "ablations="]


def run(tmp: Path, backend: str) -> dict:
    proc = harness("run", "--preset", "smoke", "--tasks", "sst2", "--students", "bilstm_soft",
                   *[a for s in [*SETS, f"teacher.label_backend={backend}"] for a in ("--set", s)],
                   "--out", str(tmp / backend), "--cache-dir", str(tmp / "cache"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((tmp / backend / "results.json").read_text())["tasks"]["sst2"]["stages"]


@pytest.mark.slow
def test_int8_labels_and_their_recorded_cost(tmp_path: Path, data_root: Path) -> None:
    """Same teacher and transfer set (cached), labelled twice: the int8 run's recorded max |logit delta|
    and argmax agreement are those of its logits against the PyTorch run's (the whole set is the
    check sample here); the ONNX files do not stay in the cache entry."""
    torch_stages, int8_stages = run(tmp_path, "torch"), run(tmp_path, "onnx-int8")
    assert int8_stages["teacher"]["cached"] and int8_stages["augment"]["cached"]  # the backend changes the labels only
    torch_meta, int8_meta = torch_stages["label"], int8_stages["label"]
    assert "backend" not in torch_meta and int8_meta["backend"] == "onnx-int8"
    ref, got = (np.load(tmp_path / "cache" / "label" / m["key"] / "logits.npy") for m in (torch_meta, int8_meta))
    check = int8_meta["backend_check"]
    assert check["check_rows"] == len(ref) == int8_meta["rows"]
    assert check["max_abs_logit_delta"] == float(np.abs(got - ref).max()) > 0  # int8 weights do move the logits
    assert check["argmax_agreement"] == round(100 * float((got.argmax(1) == ref.argmax(1)).mean()), 3)
    assert not list((tmp_path / "cache" / "label").rglob("*.onnx"))

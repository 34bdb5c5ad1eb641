"""`student.project` (issue 24, the student's size): the initial vectors on their top principal components."""

from __future__ import annotations

import numpy as np
import pytest

from harness.core.errors import HarnessError
from harness.core.plugins import load_plugins
from harness.core.registry import STUDENTS
from harness.core.settings import StudentConfig, settings_of
from harness.engine.embeddings import project
from harness.engine.stages import cache_view
from harness.engine.wordmodel import count_params


def test_vectors_in_a_subspace_keep_their_geometry() -> None:
    """Words spread over a 3-dimensional affine subspace of 8 dimensions: 3 components keep all their variance and
    every distance between words, and padding's row stays zero."""
    rng = np.random.default_rng(0)
    words = rng.normal(size=(40, 3)) @ rng.normal(size=(3, 8)) + rng.normal(size=8)  # (40, 8), rank 3 after centring
    vectors = np.vstack([np.zeros(8), words]).astype(np.float32)
    out, meta = project(vectors, 3, {"embedding": "teacher", "dim": 8, "coverage": 1.0})
    assert out.shape == (41, 3) and out.dtype == np.float32 and not out[0].any()
    assert meta == {"embedding": "teacher", "dim": 3, "coverage": 1.0, "projected_from": 8, "variance_kept": 1.0}
    distance = lambda v: np.linalg.norm(v[1:, None] - v[None, 1:], axis=-1)  # noqa: E731
    np.testing.assert_allclose(distance(out), distance(vectors), atol=1e-4)
    _, two = project(vectors, 2, meta)
    assert 0.5 < two["variance_kept"] < 1.0  # a real cut, measured


@pytest.mark.parametrize("width", [8, 9, 50])
def test_a_projection_that_is_not_narrower_is_refused(width: int) -> None:
    vectors = np.random.default_rng(0).normal(size=(30, 8)).astype(np.float32)  # 29 words, 8 wide
    with pytest.raises(HarnessError, match=f"student.project={width} must be below"):
        project(vectors, width, {})


def test_the_option_keeps_old_keys_and_is_checked() -> None:
    assert "project" not in cache_view(StudentConfig()) and cache_view(StudentConfig(project=300))["project"] == 300
    with pytest.raises(HarnessError, match="student.project=-1"):
        StudentConfig(project=-1)


def test_at_300_the_bilstm_has_the_papers_size() -> None:
    """PAPER.md: 963,002 weights outside the embeddings (two 300-wide channels into a 150-unit BiLSTM, FC 200)."""
    load_plugins()
    spec = STUDENTS.get("bilstm_soft")
    model = spec.build(settings_of(spec.settings, {}, "bilstm"), 1000, 300, 2)
    assert count_params(model)[1] == 963_002

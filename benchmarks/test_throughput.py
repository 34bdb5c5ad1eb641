"""Throughput of the heavy pipeline steps: teacher labelling (MiniLM, batch 256), the paper's
augmentation (mask / POS / n-gram over tagged SST-2 sentences), and a student's text-to-ids path."""

from __future__ import annotations

import nltk
import numpy as np
import pytest

from harness.core.config import AugmentConfig, TeacherConfig
from harness.core.registry import TEACHERS
from harness.data.augment import PosTable, augment_sentence, tag_corpus
from harness.data.batching import TokenIds


@pytest.mark.benchmark(group="teacher labelling")
def test_teacher_labelling(benchmark, sst2, info) -> None:
    """MiniLM-L6 logits for 512 training sentences in length-sorted batches of 256 (untrained head:
    speed does not depend on weight values)."""
    teacher = TEACHERS.get("hf").create(TeacherConfig(), 2)
    texts = sst2["train"].texts[:512]
    info["sentences_per_round"] = len(texts)
    benchmark.pedantic(teacher.logits, args=(texts, 256), rounds=3, warmup_rounds=1)


@pytest.mark.benchmark(group="augmentation")
def test_augmentation(benchmark, sst2, info) -> None:
    """One augmentation round (p_mask 0.1, p_pos 0.1, p_ng 0.25) over 2,000 tagged training sentences."""
    tagged = tag_corpus(sst2["train"].texts[:2000])
    table = PosTable([list(zip(t, g)) for toks, tags in tagged for t, g in zip(toks, tags)])
    cfg, rng = AugmentConfig(), np.random.default_rng(0)
    info["sentences_per_round"] = len(tagged)

    def one_round() -> None:
        for toks, tags in tagged:
            augment_sentence(toks[0], tags[0], table, rng, cfg)

    benchmark(one_round)


@pytest.mark.benchmark(group="student text path")
@pytest.mark.parametrize("path", ["harness.data.text", "nltk"])
def test_student_encode(benchmark, student, sst2, info, path: str) -> None:
    """Text to token ids (tokenise, vocabulary lookup, truncation to 64, TokenIds) for 8,192 training
    sentences: the students' path (harness/data/text.py) beside the former per-sentence NLTK one."""
    texts = [t[0] for t in sst2["train"].texts[:8192]]
    vocab, max_tokens = student.vocab, student.meta["max_tokens"]
    info["sentences_per_round"] = len(texts)

    def nltk_path() -> TokenIds:
        return TokenIds.from_lists([vocab.encode(nltk.word_tokenize(s, preserve_line=True), max_tokens) for s in texts])

    def fast_path() -> TokenIds:
        return vocab.encode_texts(texts, max_tokens)

    benchmark.pedantic(fast_path if path == "harness.data.text" else nltk_path, rounds=3, warmup_rounds=1)

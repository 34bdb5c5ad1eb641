"""GLUE's other tasks, as GLUE ships their files: CoLA, MRPC, RTE, STS-B, QNLI and WNLI.

- CoLA: train and dev have no header (source, label, original label, sentence); test has one.
  Matthews correlation.
- MRPC: header `Quality  #1 ID  #2 ID  #1 String  #2 String` after a byte-order mark, raw unbalanced
  `"` (one train row has one: read unquoted); F1 of "equivalent" and accuracy.
- RTE, QNLI: label names, and GLUE's submissions want the names back.
- STS-B: a similarity score 0..5 per pair: regression (one output), Pearson and Spearman.
- QNLI (dev and test only here) and WNLI (absent here) are registered for online users and for
  local copies that have them; without a train file they stop with MNLI's clear error.
Column aliases map the hub's names (sentence1, label, idx) onto the files' own.
"""

from __future__ import annotations

from harness.core.registry import TASKS
from harness.data.tasks import Task

PAIR = ("sentence1", "sentence2")

TASKS.add("cola", Task(
    name="cola", glue_dir="CoLA", hub=("glue", "cola"), text_columns=("sentence",), label_column="label",
    num_labels=2, metrics=("mcc",), label_names=("unacceptable", "acceptable"),
    columns=("source", "label", "original_label", "sentence"),  # train.tsv and dev.tsv have no header
))
TASKS.add("mrpc", Task(
    name="mrpc", glue_dir="MRPC", hub=("glue", "mrpc"), text_columns=PAIR, label_column="label", num_labels=2,
    metrics=("accuracy", "f1"),  # accuracy selects checkpoints; F1 of "equivalent" as in GLUE
    label_names=("not_equivalent", "equivalent"),
    aliases=(("#1 String", "sentence1"), ("#2 String", "sentence2"), ("Quality", "label")),
))
TASKS.add("rte", Task(
    name="rte", glue_dir="RTE", hub=("glue", "rte"), text_columns=PAIR, label_column="label", num_labels=2,
    metrics=("accuracy",), label_names=("entailment", "not_entailment"), submit_names=True,
))
TASKS.add("stsb", Task(
    name="stsb", glue_dir="STS-B", hub=("glue", "stsb"), text_columns=PAIR, label_column="score", num_labels=1,
    metrics=("pearson", "spearman"), score_range=(0.0, 5.0), aliases=(("label", "score"),),
))
TASKS.add("qnli", Task(
    name="qnli", glue_dir="QNLI", hub=("glue", "qnli"), text_columns=("question", "sentence"), label_column="label",
    num_labels=2, metrics=("accuracy",), label_names=("entailment", "not_entailment"), submit_names=True,
))
TASKS.add("wnli", Task(
    name="wnli", glue_dir="WNLI", hub=("glue", "wnli"), text_columns=PAIR, label_column="label", num_labels=2,
    metrics=("accuracy",), label_names=("not_entailment", "entailment"),  # the hub's ids; GLUE's files hold 0 / 1
))

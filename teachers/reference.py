"""Timing-only BERT references: `bert_large` and `bert_base` shapes with random weights.

Their fine-tuned weights are not available offline, and speed does not depend on weight values, so
these are `BertForSequenceClassification` models built from a `BertConfig` (nothing downloaded),
seeded and in eval mode, wrapped in `HFTeacher` for `logits` and `num_params`. Tokenisation uses
the bert-base-uncased WordPiece vocabulary shipped in the offline MiniLM folder (30,522 tokens, the
same as both BERT checkpoints). Their accuracy is only ever the literature's (`reported`).
"""

from __future__ import annotations

import torch
from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

from harness.core.registry import REFERENCES, ReferenceSpec
from teachers.hf import HFTeacher, resolve_checkpoint

# BERT's GLUE fine-tuning length; every SST-2 sentence fits well inside it.
MAX_LENGTH = 128


def random_bert(layers: int, hidden: int, heads: int, intermediate: int, num_labels: int) -> HFTeacher:
    """An uncased BERT of the given shape with a classification head and seeded random weights.

    Args:
        layers: transformer layers.
        hidden: hidden width.
        heads: attention heads.
        intermediate: feed-forward width.
        num_labels: classifier outputs.

    Returns:
        The model in eval mode with the bert-base-uncased tokenizer.
    """
    tokenizer = AutoTokenizer.from_pretrained(resolve_checkpoint("minilm"))
    config = BertConfig(
        vocab_size=30522, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
        intermediate_size=intermediate, max_position_embeddings=512, num_labels=num_labels,
    )
    torch.manual_seed(0)
    model = BertForSequenceClassification(config).eval()
    return HFTeacher(model, tokenizer, MAX_LENGTH)


def bert_large(num_labels: int) -> HFTeacher:
    """BERT-large-uncased shape (24 layers, 1024 wide, 16 heads, 4096 FFN): about 335.1M parameters."""
    return random_bert(24, 1024, 16, 4096, num_labels)


def bert_base(num_labels: int) -> HFTeacher:
    """BERT-base-uncased shape (12 layers, 768 wide, 12 heads, 3072 FFN): about 109.5M parameters."""
    return random_bert(12, 768, 12, 3072, num_labels)


REFERENCES.add("bert_large", ReferenceSpec(
    bert_large,
    reported={"sst2": ("GLUE test, BERT-large teacher in Tang et al. Table 1", 94.9)},
    description="BERT-large-uncased shape, random weights (the paper's teacher; timing and size only)",
))
REFERENCES.add("bert_base", ReferenceSpec(
    bert_base,
    reported={"sst2": ("GLUE test, BERT-base in Tang et al. Table 1", 93.5)},
    description="BERT-base-uncased shape, random weights (timing and size only)",
))

"""Tasks and their text: reading GLUE-style files strictly (tsv, gold_labels, tasks, pair_tasks,
glue_tasks), the selection split, tokenisation and batching, and the paper's augmentation."""

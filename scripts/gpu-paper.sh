#!/usr/bin/env bash
# Issue 24 on a lent GPU: the paper's protocol for one task up to the labelled transfer set, with the mpnet teacher:
#   the teacher fine-tuned, the augmentation, every transfer row labelled by the PyPI-packaged all-mpnet-base-v2
#   fine-tuned here (PyTorch); then the teacher's test predictions (GLUE's submission format) and
#   `harness export-transfer`, which a CPU machine trains the students from (`--set transfer.source=...`).
# The students are not trained here (a GPU lease is 15 minutes): one label-only epoch runs only because a run
# needs a student; its numbers are thrown away.
#   TASK=sst2 (default; how reports/sst2-paper-protocol ran, as scripts/gpu-paper-sst2.sh until commit 6ea6c23):
#     the suite's settings, teacher 2 epochs fp32, n_iter 20 over every training sentence (825,793 rows), fp32 labels.
#   TASK=qqp: all 364k training pairs (less the selection split) for the teacher and the transfer set, sized to
#     fit one lease (not yet run; estimates from SST-2's rates there): the teacher 1 epoch at batch 64 under bf16
#     (~5,400 steps), N_ITER (default 1) pair-aware augmentation rounds over every pair, labels under bf16.
#
# Usage, on the GPU machine, from the repository root: [TASK=qqp] bash scripts/gpu-paper.sh setup|run|rest
#   STAGE  folder holding whl/ (nltk, defusedxml), data/ (the task's folder, nltk_data), model/ (the model
#          folder's small files) and chunks/ (model.safetensors split in pieces); default $HOME/stage
#   OUT    where the results go (the folder returned to the caller)
set -euo pipefail
STAGE=${STAGE:-$HOME/stage}
WORK=${WORK:-$HOME/kd}
SHA=78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658  # all-mpnet-base-v2's model.safetensors
export HARNESS_MODELS=$WORK/models HARNESS_DATA=$STAGE/data PYTHONUNBUFFERED=1 PYTHONPATH=$WORK/site
py=python3
TASK=${TASK:-sst2}
case $TASK in
    sst2) FILE=SST-2 SETS=(--students bilstm) ;;
    qqp)  FILE=QQP SETS=(--students siamese_bilstm --set teacher.epochs=1 --set teacher.batch_size=64
                         --set teacher.precision=bf16 --set "augment.n_iter=${N_ITER:-1}") ;;
    *) echo "TASK must be sst2 or qqp" >&2; exit 2 ;;
esac

setup() {
    $py -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$WORK/site" "$STAGE"/whl/*.whl
    $py -m pip install -q --no-index --no-deps --no-build-isolation -e .   # the entry points of the built-in plugins
    $py -c "import sys, torch, transformers, pyarrow, nltk; print(sys.version.split()[0], torch.__version__, transformers.__version__, pyarrow.__version__, nltk.__version__, torch.cuda.get_device_name(0))"
    $py -m harness ls students | head -5
}

assemble() {
    local dest=$HARNESS_MODELS/all-mpnet-base-v2
    mkdir -p "$dest.tmp" && cp -r "$STAGE"/model/. "$dest.tmp"/
    cat "$STAGE"/chunks/p.* > "$dest.tmp/model.safetensors"
    echo "$SHA  $dest.tmp/model.safetensors" | sha256sum -c --quiet
    rm -rf "$dest" && mv "$dest.tmp" "$dest"
}

run() {
    assemble
    $py -m harness run --suite glue --tasks "$TASK" --set teacher.checkpoint=mpnet --set 'ablations=[]' \
        "${SETS[@]}" --set student.epochs=1 --set measure.enabled=false \
        --out "$WORK/run" --cache-dir "$WORK/cache" --device cuda 2>&1 | tee "$OUT/run.log" | grep -v "it/s\]$" || true
    test -f "$WORK/run/results.json"
    $py -m harness predict --model "$WORK/run/models/$TASK/teacher" --input "$HARNESS_DATA/$FILE/test.tsv" \
        --output "$WORK/$FILE.tsv" 2>&1 | tail -2
    $py -m harness export-transfer "$WORK/run" --task "$TASK" "$WORK/export" --cache-dir "$WORK/cache"
    # what comes back: the export, the run's results and report, each stage's meta and manifest (not the weights)
    local back=$WORK/back
    rm -rf "$back" && mkdir -p "$back/stages"
    cp -r "$WORK/export" "$WORK/run/results.json" "$WORK/run/report.md" "$WORK/$FILE.tsv" "$back"/
    (cd "$WORK/cache" && find . -maxdepth 3 \( -name meta.json -o -name manifest.json -o -name progress.json \) \
        -exec cp --parents {} "$back/stages" \;)
    tar czf "$WORK/back.tgz" -C "$WORK" back
    (cd "$WORK" && sha256sum back.tgz > "$OUT/back.tgz.sha256" && split -b 15M -a 1 back.tgz "$WORK/part.")
    ls -la "$WORK"/part.*
    gzip -f "$OUT/run.log"
    for p in $(ls "$WORK"/part.* | head -3); do mv "$p" "$OUT"/; done   # the rest: `bash $0 rest`
    ls -la "$OUT"
}

rest() {
    mv "$WORK"/part.* "$OUT"/ && ls -la "$OUT"
}

"$@"

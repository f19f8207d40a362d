#!/usr/bin/env bash
# The GPU figures of docs/performance.md and docs/finetune.md in one run on a GPU machine, plus the
# AVX512-BF16 training check (docs/finetune.md) on its host CPU. Run from the repository root:
#
#   OUT=/tmp/figures bash benchmarks/gpu_figures.sh [stage ...]      # stages: env engine train (cpu drafts profile)
#
# The default stages (env, engine, train) finish within 8 minutes on an H100: `engine` makes the random
# 7B bases in GPU memory (nothing written to disk but two adapters) and measures the compiled engine
# (bench_gpu_engine); `train` is the QLoRA 7B step. `drafts` (the naive path against the engine, 7B models
# written to disk first), `profile` and `cpu` are the older stages, run when named. Each stage writes its
# JSON or log under $OUT and has its own time limit, so one slow stage does not lose the others. Where the project's libraries are missing (a machine without network), the wheels
# under .whl/ are installed to /tmp/site first.
set -uo pipefail
OUT=${OUT:-.draftdesk/gpu-figures}
mkdir -p "$OUT"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
PY=${PYTHON:-python3}
case $PY in /*) ;; */*) PY=$PWD/$PY ;; esac  # the CPU stage runs a copy from another folder
stages=${*:-env engine train}
# Peak memory bandwidth for the fraction of the limit: an H200's 4.8 TB/s, else bench_drafts' H100 default.
bandwidth=${PEAK_TBPS:-$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | grep -q H200 && echo 4.8)}

if [ -d .whl ] && ! [ -f /tmp/site/.done ] && ! $PY -c "import bitsandbytes, trl, zenpy" 2>/dev/null; then
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        && touch /tmp/site/.done || exit 1
fi
[ -d /tmp/site ] && export PYTHONPATH=/tmp/site:$PWD || export PYTHONPATH=$PWD
if [ -d .whl/alt ] && ! $PY -c "import datasets" 2>/dev/null; then  # an older datasets for an older pyarrow
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/alt/*.whl
fi
has() { [[ " $stages " == *" $1 "* ]]; }

if has env; then
    {
        date -u +%FT%TZ
        nvidia-smi -L
        lscpu | grep -E "^(Model name|CPU\(s\)|Socket)"
        echo "avx512_bf16 flags: $(grep -c avx512_bf16 /proc/cpuinfo)"
        $PY -c "import torch, transformers, peft, trl, bitsandbytes, datasets; print('torch', torch.__version__, \
'transformers', transformers.__version__, 'peft', peft.__version__, 'trl', trl.__version__, \
'bitsandbytes', bitsandbytes.__version__, 'datasets', datasets.__version__)"
    } >"$OUT/env.txt" 2>&1
    cat "$OUT/env.txt"
fi

cpu_pid=
if has cpu; then
    # On half the host's cores, beside the GPU stages: the fixed tree, then the same tests without the fix.
    (
        cores=$(($(nproc) / 2))
        run() { CUDA_VISIBLE_DEVICES= OMP_NUM_THREADS=$cores taskset -c "$cores-$(($(nproc) - 1))" \
            timeout 420 $PY -m pytest -o addopts= -q -p no:cacheprovider "$@"; }
        run tests/test_finetune_cpu_layout.py tests/test_finetune_train.py >"$OUT/cpu_tests_fixed.log" 2>&1
        rm -rf /tmp/nofix && mkdir /tmp/nofix && cp -r bot finetune integrations models tests pyproject.toml /tmp/nofix/
        sed -i 's/^        keep_4bit_layers_trainable(model)$/        pass  # the fix, taken out/' /tmp/nofix/finetune/modeling.py
        cd /tmp/nofix && PYTHONPATH=${PYTHONPATH/$OLDPWD/\/tmp\/nofix} run tests/test_finetune_cpu_layout.py \
            "tests/test_finetune_train.py::test_an_interrupted_run_resumes_from_its_last_checkpoint" \
            "tests/test_finetune_train.py::test_cli_runs_export_prepare_train_and_eval_from_a_config" \
            >"$OUT/cpu_tests_without_fix.log" 2>&1
    ) &
    cpu_pid=$!
fi

models=${MODELS_DIR:-/tmp/bench-models}
if has engine; then
    timeout 280 $PY -m benchmarks.bench_gpu_engine --device cuda --shape 7b ${bandwidth:+--peak-bandwidth-tbps $bandwidth} \
        >"$OUT/bench_gpu_engine.json" 2>"$OUT/bench_gpu_engine.log"
    echo "engine: exit $?"; cat "$OUT/bench_gpu_engine.json"
fi
if has drafts; then
    timeout 400 $PY -m benchmarks.bench_drafts --device cuda --shape 7b --models-dir "$models" \
        --naive-tickets "${NAIVE_TICKETS:-2}" ${bandwidth:+--peak-bandwidth-tbps $bandwidth} >"$OUT/bench_drafts_7b.json" 2>"$OUT/bench_drafts_7b.log"
    echo "drafts: exit $?"; cat "$OUT/bench_drafts_7b.json"
fi
if has profile; then
    timeout 100 $PY -m benchmarks.profile_decode --models-dir "$models" --new-tokens 64 \
        >"$OUT/profile_decode.json" 2>"$OUT/profile_decode.log"
    echo "profile: exit $?"; cat "$OUT/profile_decode.json"
fi
if has train; then
    timeout 200 $PY -m finetune.benchmark --shape llama-7b --steps 20 --workdir /tmp/bench-train \
        >"$OUT/finetune_llama7b.json" 2>"$OUT/finetune_llama7b.log"
    echo "train: exit $?"; cat "$OUT/finetune_llama7b.json"
fi
if [ -n "$cpu_pid" ]; then
    wait "$cpu_pid"
    tail -n 4 "$OUT/cpu_tests_fixed.log" "$OUT/cpu_tests_without_fix.log"
fi

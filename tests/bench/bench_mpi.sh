# bench_mpi.sh (sourced by tests/bench/run.sh): data-parallel training under Open MPI against
# the threaded trainer on the same 2 cores and the same global batch (issue 13), side by side
# and alternating, MPI_REPS times:
#   threaded  train --threads 2 --batch B --accum 2        (the same bits as the MPI runs)
#   threaded  train --threads 2 --batch 2B --accum 1       (same global batch, one micro-batch)
#   mpi 2     mpirun -np 2 train --threads 1 --batch B --accum 2
#   1 rank    train --threads 1 --batch B --accum 2        (for the scaling efficiency)
# Throughput is the median of the per-step tokens/s of the log (steps 3..), so mpirun's start
# (about a second) is not counted. Target: mpi 2 ≥ 0.8× threaded. Scaling efficiency =
# mpi-2 tokens/s / (2 × one-rank tokens/s). Communication per step: the bytes rank 0 sent
# (train --stats: mpi_bytes_sent_rank0 / steps) against 4 × parameters. The headline is CPU
# seconds per step (runs of S steps minus runs of 2 steps, every process, start-up excluded):
# the work each way costs, which other jobs on the machine do not change much. Wall-clock
# tokens/s and the scaling efficiency are printed only when the 1-minute load average is below
# the core count: above it, a run gets a share of the cores that depends on the other jobs and
# on how many threads are runnable at each moment, not on the trainer.
# MPI_CONFIGS="A" runs the smaller config only. Last, build/bench/bin/dist_treesum times
# one tree sum of the gradient (2 ranks) with single_copy_mechanism none and cma.
: "${MPI_REPS:=3}"
work=$BENCH_WORK/mpi
mkdir -p "$work"
if ! command -v mpirun >/dev/null; then
    echo "mpi: mpirun not installed (Debian openmpi-bin); skipped"
    return 0
fi
# Shared-memory transport; MPI_SINGLE_COPY=cma lets a large message be read in one copy
# (process_vm_readv, which containers often forbid: hence none by default). The tree sum's own
# cost with each setting is printed at the end of each config.
export OMPI_MCA_btl=self,vader OMPI_MCA_btl_vader_single_copy_mechanism=${MPI_SINGLE_COPY:-none}
awk 'BEGIN { srand(7); for (i = 0; i < 60; i++) { s = "{\"input_ids\":["
    for (j = 0; j < 2000; j++) s = s (j ? "," : "") int(rand() * 4095) + 1
    print s "]}" } }' > "$work/rand.jsonl"

mpi_median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

# mpi_run NAME LAUNCHER... -- TRAIN_ARGS...: tokens/s (median over steps 3..); stats in
# $work/NAME.stats.json, weights in $work/NAME/
mpi_run() {
    local name=$1 launch=()
    shift
    while [ "$1" != -- ]; do launch+=("$1"); shift; done
    shift
    /usr/bin/time -f '%U %S' -o "$work/$name.cpu" "${launch[@]}" train "$@" --log "$work/$name.log" --stats "$work/$name.stats.json" \
        -o "$work/$name" "$work/rand.jsonl" 2>"$work/$name.err" || {
        cat "$work/$name.err" >&2; return 1; }
    tail -n +3 "$work/$name.log" | sed 's/.*"tokens_per_s":\([0-9.e+]*\).*/\1/' | mpi_median
}
# mpi_cpu NAME: CPU seconds (user + sys, all processes) of the last mpi_run NAME
mpi_cpu() { tail -n 1 "$work/$1.cpu" | awk '{print $1 + $2}'; }

: "${MPI_CONFIGS:=A B}" # which of the two configs to run
for cfg in "A 4096 128 4 4 352 128 8 12" "B 4096 256 6 8 688 256 4 8"; do
    set -- $cfg
    [[ " $MPI_CONFIGS " == *" $1 "* ]] || continue
    name=$1 V=$2 D=$3 L=$4 H=$5 FF=$6 T=$7 B=$8 S=$9
    model=(--vocab "$V" --eos 0 --dim "$D" --layers "$L" --heads "$H" --ffn "$FF" --max-seq "$T"
           --seq-len "$T" --steps "$S" -q)
    mpirun_2=(mpirun --allow-run-as-root --oversubscribe --bind-to none -np 2)
    th=() th1=() mp=() one=() cth=() cmp_=()
    for ((r = 0; r < MPI_REPS; r++)); do
        th+=("$(mpi_run thr env -- "${model[@]}" --threads 2 --batch "$B" --accum 2)") || return 1
        mp+=("$(mpi_run mpi "${mpirun_2[@]}" -- "${model[@]}" --threads 1 --batch "$B" \
            --accum 2)") || return 1
        th1+=("$(mpi_run thr1 env -- "${model[@]}" --threads 2 --batch $((2 * B)) --accum 1)") ||
            return 1
        one+=("$(mpi_run one env -- "${model[@]}" --threads 1 --batch "$B" --accum 2)") || return 1
        # CPU time per step: the S-step runs minus 2-step runs (start-up cancels out).
        c_thr=$(mpi_cpu thr) c_mpi=$(mpi_cpu mpi)
        mpi_run thr_s2 env -- "${model[@]}" --threads 2 --batch "$B" --accum 2 --steps 2 \
            >/dev/null || return 1
        mpi_run mpi_s2 "${mpirun_2[@]}" -- "${model[@]}" --threads 1 --batch "$B" --accum 2 \
            --steps 2 >/dev/null || return 1
        cth+=("$(echo "($c_thr - $(mpi_cpu thr_s2)) / ($S - 2)" | bc -l)")
        cmp_+=("$(echo "($c_mpi - $(mpi_cpu mpi_s2)) / ($S - 2)" | bc -l)")
    done
    c_thr=$(printf '%s\n' "${cth[@]}" | mpi_median)
    c_mpi=$(printf '%s\n' "${cmp_[@]}" | mpi_median)
    cmp -s "$work/thr/model.safetensors" "$work/mpi/model.safetensors" && same=yes || same=NO
    t_thr=$(printf '%s\n' "${th[@]}" | mpi_median)
    t_thr1=$(printf '%s\n' "${th1[@]}" | mpi_median)
    t_mpi=$(printf '%s\n' "${mp[@]}" | mpi_median)
    t_one=$(printf '%s\n' "${one[@]}" | mpi_median)
    params=$(sed 's/.*"parameters":\([0-9]*\).*/\1/' "$work/mpi.stats.json")
    bytes=$(sed 's/.*"mpi_bytes_sent_rank0":\([0-9]*\).*/\1/' "$work/mpi.stats.json")
    per_step=$((bytes / S))
    la=$(loadavg) cores=$(nproc)
    awk -v n="mpi $name (V$V d$D L$L T$T, global batch $((2 * B)))" -v thr="$t_thr" \
        -v thr1="$t_thr1" -v mpi="$t_mpi" -v one="$t_one" -v ps="$per_step" -v p="$params" \
        -v same="$same" -v b="$B" -v ct="$c_thr" -v cm="$c_mpi" -v la="$la" -v cores="$cores" 'BEGIN {
        printf "%-44s CPU per step: threaded 2t %.3f s, 2 ranks %.3f s: CPU-time throughput 2 ranks / threaded %.2fx (target >= 0.8) | load %s, %d cores\n",
            n, ct, cm, ct / cm, la, cores
        if (la + 0 < cores) {
            printf "%-44s wall: 2 ranks %7.0f tok/s | threaded 2t %7.0f tok/s (B%dx2) %7.0f (B%dx1) | ratio %.2fx, %.2fx\n",
                "", mpi, thr, b, thr1, 2 * b, mpi / thr, mpi / thr1
            printf "%-44s scaling efficiency %.0f%% (1 rank 1 thread %.0f tok/s)\n", "", 100 * mpi / (2 * one), one
        } else
            printf "%-44s wall not reported: load %s >= %d cores (medians measured: 2 ranks %.0f, threaded %.0f tok/s)\n",
                "", la, cores, mpi, thr
        printf "%-44s rank 0 sends %d bytes/step = %.2f x 4 x %d params; weights identical to threaded: %s\n",
            "", ps, ps / (4 * p), p, same }'
    bench_record "mpi $name" tokens_per_s_mpi2 "$t_mpi" tokens_per_s_threaded2 "$t_thr" \
        tokens_per_s_threaded2_one_microbatch "$t_thr1" tokens_per_s_one_rank "$t_one" \
        ratio "$(echo "$t_mpi / $t_thr" | bc -l)" \
        scaling_efficiency "$(echo "$t_mpi / (2 * $t_one)" | bc -l)" \
        bytes_per_step_rank0 "$per_step" parameters "$params" identical_weights "$same" \
        cpu_s_per_step_threaded2 "$c_thr" cpu_s_per_step_mpi2 "$c_mpi" \
        cpu_ratio "$(echo "$c_thr / $c_mpi" | bc -l)" load "$la" cores "$cores"
    for scm in none cma; do
        r=$(OMPI_MCA_btl_vader_single_copy_mechanism=$scm "${mpirun_2[@]}" \
            "$KILN_ROOT/build/bench/bin/dist_treesum" "$params" 20 2>/dev/null | sort -k2 -g |
            tail -n 1) || r=""
        if [ -z "$r" ]; then
            echo "  tree sum ($scm): failed (not available here)"
            continue
        fi
        set -- $r
        printf '%-44s tree sum of %d floats, single copy %-4s: %.1f ms wall (median, slower rank), %.1f ms CPU | load %s\n' \
            "" "$params" "$scm" "$2" "$3" "$(loadavg)"
        bench_record "mpi $name tree sum $scm" floats "$params" wall_ms "$2" cpu_ms "$3" load "$(loadavg)"
    done
done

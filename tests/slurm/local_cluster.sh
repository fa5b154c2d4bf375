#!/usr/bin/env bash
# Start, stop or inspect a one-node SLURM cluster on localhost, for the workflow's SLURM tests
# (tests/test_slurm.py) and CI (.ci/run). Debian packages, no systemd, no cgroups, no slurmdbd;
# the node offers fake GPUs (null devices), so GPU rules are scheduled as on a real cluster.
#
#   tests/slurm/local_cluster.sh start    # install what is missing, write the config, start, wait
#   tests/slurm/local_cluster.sh stop     # cancel every job, stop the daemons this script started
#   tests/slurm/local_cluster.sh status   # sinfo and squeue
#
# Needs root (apt, daemons running as root, /etc/slurm). `start` is idempotent: it restarts the
# SLURM daemons only when the generated configuration changed. `stop` ends daemons by the PIDs in
# their pid files (TERM, then KILL after 15 s) and munged only if `start` started it.
#
# Settings (environment):
#   SLURM_FAKE_GPUS      fake GPUs on the node (default 2: two GPU jobs run at once, one per core
#                        of a 2-core CI machine)
#   SLURM_NODE_MEMORY_MB memory the node offers (default 16000, or the machine's memory if less:
#                        a modest cluster node, so the tests see sbatch accept the requests a new
#                        user's run makes, or reject them; without cgroups nothing enforces it)
#   SLURM_PARTITION      name of the (default) partition (default debug)
#   SLURM_MIN_JOB_AGE    seconds a finished job stays visible to squeue (default 3600: the tests
#                        read the states and limits of finished jobs)
#   SLURM_LOCAL_DIR      state, logs and pid files (default /var/lib/xstilts-slurm)
#   SLURM_INSTALL        1: apt-get install missing packages (default); 0: fail instead
#   SLURM_START_TIMEOUT  seconds to wait for the node to become idle (default 60)
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
STATE=${SLURM_LOCAL_DIR:-/var/lib/xstilts-slurm}
GPUS=${SLURM_FAKE_GPUS:-2}
MACHINE_MB=$(awk '/^MemTotal:/ {print int($2 / 1024)}' /proc/meminfo)
MEMORY_MB=${SLURM_NODE_MEMORY_MB:-$((MACHINE_MB < 16000 ? MACHINE_MB : 16000))}
PARTITION=${SLURM_PARTITION:-debug}
MIN_JOB_AGE=${SLURM_MIN_JOB_AGE:-3600}
INSTALL=${SLURM_INSTALL:-1}
START_TIMEOUT=${SLURM_START_TIMEOUT:-60}
CONF_DIR=/etc/slurm
MARKER="Written by tests/slurm/local_cluster.sh (xstilts)"
PACKAGES=(slurmctld slurmd slurm-client munge)
NODE=$(hostname -s)

log() { echo "local_cluster: $*" >&2; }
die() { log "error: $*"; exit 1; }

alive() {  # alive PIDFILE: the process named in PIDFILE is running
    [[ -s $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null
}

stop_pidfile() {  # stop_pidfile NAME PIDFILE: TERM, then KILL after 15 s
    local name=$1 pidfile=$2 pid
    alive "$pidfile" || { rm -f "$pidfile"; return 0; }
    pid=$(cat "$pidfile")
    log "stopping $name (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 150); do
        kill -0 "$pid" 2>/dev/null || { rm -f "$pidfile"; return 0; }
        sleep 0.1
    done
    log "$name did not exit after 15 s: KILL"
    kill -KILL "$pid" 2>/dev/null || true
    rm -f "$pidfile"
}

install_packages() {
    local missing=()
    for p in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    ((${#missing[@]})) || return 0
    [[ $INSTALL == 1 ]] || die "missing packages ${missing[*]} (SLURM_INSTALL=0)"
    log "installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

start_munge() {
    if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
        return 0  # a munged is already serving (ours or the machine's)
    fi
    [[ -s /etc/munge/munge.key ]] || { mungekey --create --keyfile /etc/munge/munge.key; chown munge:munge /etc/munge/munge.key; chmod 0400 /etc/munge/munge.key; }
    install -d -o munge -g munge -m 0755 /run/munge
    runuser -u munge -- /usr/sbin/munged
    touch "$STATE/run/munged.started"
    munge -n | unmunge >/dev/null || die "munged does not answer"
}

render() {  # render TEMPLATE: substitute @VARS@
    local gpu_files=/dev/null
    if ((GPUS > 1)); then
        for ((i = 0; i < GPUS; i++)); do
            [[ -e /dev/xstilts-gpu$i ]] || mknod -m 0666 "/dev/xstilts-gpu$i" c 1 3
        done
        gpu_files="/dev/xstilts-gpu[0-$((GPUS - 1))]"
    fi
    sed -e "s|@NODE@|$NODE|g" -e "s|@CPUS@|$(nproc)|g" -e "s|@MEMORY_MB@|$MEMORY_MB|g" \
        -e "s|@GPUS@|$GPUS|g" -e "s|@GPU_FILES@|$gpu_files|g" -e "s|@PARTITION@|$PARTITION|g" \
        -e "s|@MIN_JOB_AGE@|$MIN_JOB_AGE|g" -e "s|@STATE@|$STATE|g" "$1"
}

write_config() {  # prints "changed" when the files on disk were replaced
    local f new
    for f in slurm.conf gres.conf; do
        if [[ -e $CONF_DIR/$f ]] && ! grep -q "$MARKER" "$CONF_DIR/$f"; then
            die "$CONF_DIR/$f was not written by this script; refusing to overwrite a real cluster's configuration"
        fi
    done
    mkdir -p "$CONF_DIR"
    for f in slurm.conf gres.conf; do
        new=$(render "$HERE/$f.in")
        if [[ ! -e $CONF_DIR/$f ]] || [[ $new != "$(cat "$CONF_DIR/$f")" ]]; then
            printf '%s\n' "$new" >"$CONF_DIR/$f"
            echo changed
        fi
    done
}

wait_for_node() {
    local deadline=$((SECONDS + START_TIMEOUT)) state
    while ((SECONDS < deadline)); do
        state=$(sinfo -h -N -n "$NODE" -o %t 2>/dev/null | head -1 || true)
        case $state in
            idle | mix | alloc) log "node $NODE is $state (partition $PARTITION, $GPUS fake GPU(s))"; return 0 ;;
            drain* | drng* | down* | inval* | fail*) scontrol update nodename="$NODE" state=resume 2>/dev/null || true ;;
        esac
        sleep 0.5
    done
    log "node $NODE did not become idle within ${START_TIMEOUT}s (state: ${state:-unknown}); daemon logs:"
    tail -n 20 "$STATE/log/slurmctld.log" "$STATE/log/slurmd.log" >&2 || true
    exit 1
}

cmd_start() {
    [[ $(id -u) == 0 ]] || die "needs root"
    install_packages
    mkdir -p "$STATE"/{slurmctld,slurmd,run,log}
    start_munge
    local changed
    changed=$(write_config)
    if [[ -n $changed ]]; then
        stop_pidfile slurmd "$STATE/run/slurmd.pid"
        stop_pidfile slurmctld "$STATE/run/slurmctld.pid"
    fi
    # -c: a clean controller state, so no job of an earlier session comes back.
    alive "$STATE/run/slurmctld.pid" || /usr/sbin/slurmctld -c
    alive "$STATE/run/slurmd.pid" || /usr/sbin/slurmd
    wait_for_node
}

cmd_stop() {
    if alive "$STATE/run/slurmctld.pid"; then
        local jobs
        jobs=$(squeue -h -o %i 2>/dev/null || true)
        if [[ -n $jobs ]]; then
            log "cancelling jobs $(echo $jobs)"
            # shellcheck disable=SC2086
            scancel $jobs 2>/dev/null || true
        fi
    fi
    stop_pidfile slurmd "$STATE/run/slurmd.pid"
    stop_pidfile slurmctld "$STATE/run/slurmctld.pid"
    if [[ -e $STATE/run/munged.started ]]; then
        stop_pidfile munged /run/munge/munged.pid
        rm -f "$STATE/run/munged.started"
    fi
}

cmd_status() {
    sinfo && squeue --states=all
}

case ${1:-} in
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac

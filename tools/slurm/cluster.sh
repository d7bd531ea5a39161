#!/usr/bin/env bash
# A one-node SLURM cluster on this machine, for CI (see ../../.ci/run) and for
# trying `lrscape slurm` locally. Needs root (Debian/Ubuntu: apt).
#
#   tools/slurm/cluster.sh up     install slurm-wlm + munge if sbatch is missing,
#                                 write the munge key and slurm.conf, start
#                                 munged, slurmctld and slurmd, wait until the
#                                 node is idle; the pids go to $STATE/pids
#   tools/slurm/cluster.sh down   stop the daemons `up` started (by pid)
#   tools/slurm/cluster.sh install   only the apt step of `up` (if sbatch is missing)
#
# $LRSCAPE_SLURM_STATE (default /tmp/lrscape-slurm) holds the pid file and logs.
# An existing slurm.conf or munge key is kept unless `up` started from scratch
# (no sbatch on the machine) or LRSCAPE_SLURM_RECONFIGURE=1.
set -euo pipefail

STATE="${LRSCAPE_SLURM_STATE:-/tmp/lrscape-slurm}"
PIDS="$STATE/pids"
mkdir -p "$STATE"

log() { echo "slurm-cluster: $*" >&2; }

# Installs slurm-wlm and munge when missing; prints "installed" if it did.
install() {
  if ! command -v sbatch >/dev/null || ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
    if [ "$(id -u)" != 0 ]; then
      log "sbatch/slurmctld/munged missing and not root: install slurm-wlm and munge"; exit 1
    fi
    log "installing slurm-wlm and munge (apt)"
    apt-get update >"$STATE/apt.log" 2>&1
    DEBIAN_FRONTEND=noninteractive apt-get install -y slurm-wlm munge >>"$STATE/apt.log" 2>&1 \
      || { tail -20 "$STATE/apt.log" >&2; exit 1; }
    echo installed
  fi
}

up() {
  local reconfigure="${LRSCAPE_SLURM_RECONFIGURE:-0}"
  local installed
  installed="$(install)" || exit 1
  if [ "$installed" = installed ]; then reconfigure=1; fi
  if sinfo -h -o %T >/dev/null 2>&1 && [ -s "$PIDS" ]; then
    log "already up (pids $(tr '\n' ' ' <"$PIDS"))"; return 0
  fi
  local host cpus
  host="$(hostname -s)"
  cpus="$(nproc)"
  if [ "$reconfigure" = 1 ] || [ ! -s /etc/munge/munge.key ]; then
    mkdir -p /etc/munge
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
    chown munge:munge /etc/munge/munge.key 2>/dev/null || true
    chmod 400 /etc/munge/munge.key
  fi
  mkdir -p /var/spool/slurmctld /var/spool/slurmd /var/log/slurm /run/munge /etc/slurm
  chown munge:munge /run/munge 2>/dev/null || true
  if [ "$reconfigure" = 1 ] || [ ! -s /etc/slurm/slurm.conf ]; then
    cat >/etc/slurm/slurm.conf <<CONF
ClusterName=lrscape
SlurmctldHost=$host
SlurmUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
JobAcctGatherType=jobacct_gather/none
ReturnToService=2
MpiDefault=none
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
MinJobAge=600
NodeName=$host CPUs=$cpus State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
  fi
  # Foreground daemons started in the background: $! is each daemon's pid.
  # Their output goes to files, never to the caller's pipes.
  : >"$PIDS"
  if ! pgrep -x munged >/dev/null; then
    munged --foreground --force </dev/null >"$STATE/munged.out" 2>&1 &
    echo $! >>"$PIDS"
    for _ in $(seq 50); do [ -S /run/munge/munge.socket.2 ] && break; sleep 0.1; done
  fi
  slurmctld -D </dev/null >"$STATE/slurmctld.out" 2>&1 &
  echo $! >>"$PIDS"
  sleep 1
  slurmd -D </dev/null >"$STATE/slurmd.out" 2>&1 &
  echo $! >>"$PIDS"
  for _ in $(seq 120); do
    state="$(sinfo -h -o %T 2>/dev/null | head -1 || true)"
    case "$state" in
      idle|mixed|allocated) log "up: node $host $state, $cpus CPUs (pids $(tr '\n' ' ' <"$PIDS"))"; return 0 ;;
      down*|drain*) scontrol update nodename="$host" state=resume >/dev/null 2>&1 || true ;;
    esac
    sleep 0.5
  done
  log "node did not become idle in 60 s; sinfo: $(sinfo 2>&1 | tail -2)"
  tail -5 "$STATE"/*.out /var/log/slurm/*.log >&2 || true
  exit 1
}

down() {
  [ -s "$PIDS" ] || { log "nothing to stop (no $PIDS)"; return 0; }
  # Reverse order: slurmd, slurmctld, then munged.
  tac "$PIDS" | while read -r pid; do
    [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
  done
  for _ in $(seq 50); do
    alive=0
    while read -r pid; do [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && alive=1; done <"$PIDS"
    [ "$alive" = 0 ] && break
    sleep 0.2
  done
  log "stopped pids $(tr '\n' ' ' <"$PIDS")"
  rm -f "$PIDS"
}

case "${1:-}" in
  up) up ;;
  install) install >/dev/null ;;
  down) down ;;
  *) echo "usage: $0 up|down|install" >&2; exit 2 ;;
esac

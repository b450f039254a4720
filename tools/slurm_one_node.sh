#!/usr/bin/env bash
# A one-node SLURM cluster on this machine, for the workflow's SLURM tests: Debian's
# slurmctld/slurmd (22.05) and munge, configured without cgroups or accounting
# (proctrack/linuxproc, task/none). Run as root; idempotent (a running cluster is kept).
#   tools/slurm_one_node.sh          # start; prints the node state when it is idle
set -euo pipefail
if [ "$(id -u)" != 0 ]; then echo "slurm_one_node.sh: needs root" >&2; exit 1; fi
for b in slurmctld slurmd munged sinfo; do
    command -v "$b" >/dev/null || { echo "slurm_one_node.sh: $b not installed (apt-get install slurmctld slurmd slurm-client munge)" >&2; exit 1; }
done
host="$(hostname -s)"
cpus="$(nproc)"
mem_mb=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 1024 ))
mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm
cat > /etc/slurm/slurm.conf <<EOF
ClusterName=lensfinder-ci
SlurmctldHost=${host}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
MpiDefault=none
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
# A job over its time limit gets SIGTERM, then SIGKILL KillWait seconds later.
KillWait=30
OverTimeLimit=0
MinJobAge=600
NodeName=${host} CPUs=${cpus} RealMemory=${mem_mb} State=UNKNOWN
PartitionName=debug Nodes=${host} Default=YES MaxTime=INFINITE State=UP
EOF
mkdir -p /run/munge && chown munge:munge /run/munge /var/log/munge 2>/dev/null || true
if ! pgrep -x munged >/dev/null; then
    [ -s /etc/munge/munge.key ] || { dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key 2>/dev/null; }
    chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
    runuser -u munge -- /usr/sbin/munged
fi
pgrep -x slurmctld >/dev/null || slurmctld
pgrep -x slurmd >/dev/null || slurmd
for _ in $(seq 60); do
    state="$(sinfo -h -o %T 2>/dev/null | head -n 1 || true)"
    case "$state" in idle|mixed|allocated) echo "slurm: node ${host} ${state} (${cpus} CPUs, ${mem_mb} MB)"; exit 0;; esac
    sleep 1
done
echo "slurm_one_node.sh: the node did not come up (state: ${state:-none}); see /var/log/slurm/" >&2
exit 1

#!/usr/bin/env bash
# A real single-node SLURM on loopback for CI: munge, MariaDB + slurmdbd, slurmctld, slurmd.
#   .ci/slurm.sh install   apt-get the daemons (root, Debian/Ubuntu)
#   .ci/slurm.sh up        configure and start them; every PID goes to $STATE/pids/
#                          (exit 3: already running, started by someone else: left alone)
#   .ci/slurm.sh down      scancel everything, then stop the daemons by their recorded PIDs
# No systemd needed: each daemon runs in the foreground of its own background process, so the
# PID we record is the daemon's own. Nothing is ever stopped by name.
set -euo pipefail

STATE=${MOFSIEVE_SLURM_STATE:-/tmp/mofsieve-ci-slurm}
PIDS=$STATE/pids
NODE=$(hostname -s)
DB_PASS=mofsieve-ci

log() { printf '[slurm.sh %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }

wait_for() {  # wait_for SECONDS DAEMON DESCRIPTION COMMAND...: fails early if DAEMON died
    local limit=$1 daemon=$2 what=$3
    shift 3
    for ((i = 0; i < limit * 2; i++)); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        if ! alive "$daemon"; then
            log "$daemon died while waiting for $what; its output:"
            tail -n 20 "$STATE/$daemon.out" >&2
            return 1
        fi
        sleep 0.5
    done
    log "timed out after ${limit}s waiting for $what"
    return 1
}

start() {  # start NAME COMMAND... : run in the background in its own session, record the PID
    local name=$1
    shift
    setsid "$@" >"$STATE/$name.out" 2>&1 < /dev/null &
    echo $! >"$PIDS/$name.pid"
    log "started $name (pid $!)"
}

alive() { [[ -f $PIDS/$1.pid ]] && kill -0 "$(cat "$PIDS/$1.pid")" 2>/dev/null; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

cmd_install() {
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends \
        munge slurmctld slurmd slurm-client slurmdbd mariadb-server >/dev/null
}

cmd_up() {
    [[ $(id -u) == 0 ]] || { log "must run as root"; exit 1; }
    local f live=""
    for f in "$PIDS"/*.pid; do
        [[ -f $f ]] || continue
        if kill -0 "$(cat "$f")" 2>/dev/null; then live+=" $(basename "$f" .pid)"; else rm -f "$f"; fi
    done
    if [[ -n $live ]]; then
        log "already up (running:$live); another run owns it. '$0 down' stops it"
        exit 3
    fi
    mkdir -p "$PIDS" "$STATE"/{ctld,slurmd,log}

    # 1. munge
    if [[ ! -s /etc/munge/munge.key ]]; then mungekey -c -f -k /etc/munge/munge.key; fi
    chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
    install -d -o munge -g munge -m 755 /run/munge /var/log/munge /var/lib/munge
    start munged setpriv --reuid=munge --regid=munge --init-groups /usr/sbin/munged --foreground
    wait_for 20 munged munge bash -c 'munge -n | unmunge'

    # 2. MariaDB (own data directory and socket) + the accounting database
    local datadir=$STATE/mysql sock=$STATE/mysql/mysqld.sock
    install -d -o mysql -g mysql "$datadir"
    mariadb-install-db --user=mysql --datadir="$datadir" --skip-test-db >"$STATE/log/mariadb-install.log" 2>&1
    start mariadbd /usr/sbin/mariadbd --user=mysql --datadir="$datadir" --socket="$sock" \
        --bind-address=127.0.0.1 --port=3306 --pid-file="$datadir/mariadbd.pid" --skip-log-bin
    wait_for 60 mariadbd "MariaDB" mariadb --socket="$sock" -u root -e 'SELECT 1'
    mariadb --socket="$sock" -u root <<SQL
CREATE DATABASE IF NOT EXISTS slurm_acct_db;
CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY '$DB_PASS';
CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '$DB_PASS';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';
SQL

    # 3. configuration
    local mem
    mem=$(slurmd -C | sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p')
    mem=$((mem - 512))
    install -d /etc/slurm
    cat >/etc/slurm/slurmdbd.conf <<EOF
AuthType=auth/munge
DbdHost=localhost
DbdPort=6819
SlurmUser=root
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=3306
StorageUser=slurm
StoragePass=$DB_PASS
StorageLoc=slurm_acct_db
LogFile=$STATE/log/slurmdbd.log
PidFile=$STATE/slurmdbd.pid
EOF
    chmod 600 /etc/slurm/slurmdbd.conf
    cat >/etc/slurm/slurm.conf <<EOF
ClusterName=local
SlurmctldHost=localhost
SlurmUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1000
MpiDefault=pmi2
ReturnToService=2
MinJobAge=300
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
JobAcctGatherType=jobacct_gather/linux
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/slurmd
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$(nproc) RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF

    # 4. daemons
    start slurmdbd /usr/sbin/slurmdbd -D
    wait_for 60 slurmdbd "slurmdbd on port 6819" port_open 6819
    start slurmctld /usr/sbin/slurmctld -D -i
    wait_for 30 slurmctld "slurmctld" scontrol ping
    start slurmd /usr/sbin/slurmd -D
    wait_for 60 slurmd "node $NODE idle" bash -c "sinfo -h -N -o %t | grep -qx idle"
    sacctmgr -i add account root >/dev/null 2>&1 || true
    log "SLURM up: $(sinfo -h -o '%P %a %D %t %c cpus %m MB')"
}

cmd_down() {
    if command -v scancel >/dev/null && alive slurmctld; then
        scancel --user=root >/dev/null 2>&1 || true
        sleep 1
    fi
    local name
    for name in slurmd slurmctld slurmdbd mariadbd munged; do  # reverse start order
        [[ -f $PIDS/$name.pid ]] || continue
        local pid
        pid=$(cat "$PIDS/$name.pid")
        if kill -0 "$pid" 2>/dev/null; then
            kill -TERM "$pid"
            for ((i = 0; i < 40; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
            if kill -0 "$pid" 2>/dev/null; then
                log "$name (pid $pid) ignored TERM; killing"
                kill -KILL "$pid" 2>/dev/null || true
            fi
            log "stopped $name (pid $pid)"
        fi
        rm -f "$PIDS/$name.pid"
    done
}

case ${1:-} in
    install) cmd_install ;;
    up) cmd_up ;;
    down) cmd_down ;;
    *) echo "usage: $0 install|up|down" >&2; exit 2 ;;
esac

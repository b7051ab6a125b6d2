#!/usr/bin/env bash
# Make sure a Docker engine answers on this machine.
#
#  - installs docker.io (apt) if there is no `dockerd`
#  - starts `dockerd --iptables=false` in the background if `docker info` fails
#  - waits (bounded) until `docker info` answers; on timeout prints the log tail
#    and exits non-zero
#
# Idempotent: does nothing if the engine already answers.
# Env: DOCKERD_LOG (default /tmp/dockerd.log), DOCKERD_WAIT (seconds, default 60),
#      DOCKERD_ARGS (extra dockerd arguments, word-split).
set -euo pipefail

LOG=${DOCKERD_LOG:-/tmp/dockerd.log}
WAIT=${DOCKERD_WAIT:-60}

log() { printf '[start-docker] %s\n' "$*" >&2; }

if docker info >/dev/null 2>&1; then
    log "docker engine already answers"
    exit 0
fi

SUDO=()
if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null 2>&1 || { log "not root and no sudo"; exit 1; }
    SUDO=(sudo)
fi

# docker.io puts dockerd in /usr/sbin, which may be missing from a non-root PATH.
DOCKERD=$(PATH="$PATH:/usr/sbin:/sbin" command -v dockerd || true)
if [ -z "$DOCKERD" ]; then
    log "dockerd missing: installing docker.io"
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io >/dev/null
    DOCKERD=$(PATH="$PATH:/usr/sbin:/sbin" command -v dockerd)
fi

PIDFILE=/var/run/docker.pid
if [ -s "$PIDFILE" ] && [ -d "/proc/$(cat "$PIDFILE")" ]; then
    log "dockerd is already running but not answering yet; waiting for it"
else
    log "starting $DOCKERD --iptables=false (log: $LOG)"
    # shellcheck disable=SC2086
    "${SUDO[@]}" nohup "$DOCKERD" --iptables=false ${DOCKERD_ARGS:-} >"$LOG" 2>&1 </dev/null &
    disown || true
fi

for _ in $(seq 1 "$WAIT"); do
    if docker info >/dev/null 2>&1; then
        log "docker engine is up ($(docker version --format '{{.Server.Version}}' 2>/dev/null || echo '?'))"
        exit 0
    fi
    sleep 1
done

log "docker engine did not answer within ${WAIT}s; last lines of $LOG:"
tail -n 40 "$LOG" >&2 2>/dev/null || true
exit 1

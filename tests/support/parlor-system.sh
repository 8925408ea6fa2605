# A real Parlor for scripts that drive it from outside (examples/run, tests/contract/run), to be
# sourced: `start_parlor_system` starts Debian's nats-server and `parlor up --nats-url
# --event-format json` on free loopback ports with a fresh data directory and an HS256 secret
# file, waits (bounded) until the operator /healthz answers, and exports PARLOR_NATS_URL,
# PARLOR_HTTP_URL and PARLOR_JWT_SECRET_FILE. Everything it started is stopped on exit, each
# with SIGTERM, a bounded wait, then SIGKILL.
#
# Needs: PARLOR_BIN (the binary; default: `cargo build -p parlor` in REPOSITORY), nats-server,
# python3 (free ports, HTTP probe).

# Bounded waits, in tenths of a second.
PARLOR_START_WAIT_TENTHS=300
PARLOR_STOP_WAIT_TENTHS=100

parlor_pids=()
parlor_work=""

stop_parlor_system() {
    local pid tenths
    for pid in "${parlor_pids[@]}"; do
        kill -TERM "$pid" 2>/dev/null || continue
        for ((tenths = 0; tenths < PARLOR_STOP_WAIT_TENTHS; tenths++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    parlor_pids=()
    [ -z "$parlor_work" ] || rm -rf "$parlor_work"
}

parlor_free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Waits until the command after `what` and `log` succeeds, or fails naming `what`, with `log`.
parlor_wait_for() {
    local what="$1" log="$2" tenths
    shift 2
    for ((tenths = 0; tenths < PARLOR_START_WAIT_TENTHS; tenths++)); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 0.1
    done
    echo "$what did not come up in $((PARLOR_START_WAIT_TENTHS / 10)) s; its log:" >&2
    tail -n 30 "$log" >&2 || true
    return 1
}

# The tail of parlor's log, for a failure report.
parlor_log_tail() {
    tail -n 30 "$parlor_work/parlor.log" >&2 || true
}

start_parlor_system() {
    local nats_server nats_port http_port ops_port
    nats_server="$(command -v nats-server || echo /usr/sbin/nats-server)"
    [ -x "$nats_server" ] || { echo "nats-server is missing (apt-get install -y nats-server)" >&2; return 1; }
    if [ -z "${PARLOR_BIN:-}" ]; then
        export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$REPOSITORY/target}"
        (cd "$REPOSITORY" && cargo build --quiet -p parlor) || return 1
        PARLOR_BIN="$CARGO_TARGET_DIR/debug/parlor"
    fi
    parlor_work="$(mktemp -d /var/tmp/parlor-system.XXXXXX)"
    trap stop_parlor_system EXIT

    nats_port="$(parlor_free_port)"
    "$nats_server" -a 127.0.0.1 -p "$nats_port" >"$parlor_work/nats.log" 2>&1 &
    parlor_pids+=("$!")
    parlor_wait_for nats-server "$parlor_work/nats.log" \
        bash -c "exec 3<>/dev/tcp/127.0.0.1/$nats_port" || return 1

    http_port="$(parlor_free_port)"
    ops_port="$(parlor_free_port)"
    head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$parlor_work/jwt-secret"
    PARLOR_LOG="${PARLOR_LOG:-warn}" "$PARLOR_BIN" up --nats-url "nats://127.0.0.1:$nats_port" --data-dir "$parlor_work/data" \
        --http-addr "127.0.0.1:$http_port" --ops-addr "127.0.0.1:$ops_port" \
        --jwt-secret-file "$parlor_work/jwt-secret" --event-format json \
        >"$parlor_work/parlor.log" 2>&1 &
    # Stopped first: parlor drains to NATS, then nats-server goes.
    parlor_pids=("$!" "${parlor_pids[@]}")
    parlor_wait_for "parlor up" "$parlor_work/parlor.log" python3 -c \
        "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$ops_port/healthz', timeout=2)" \
        || return 1

    export PARLOR_NATS_URL="nats://127.0.0.1:$nats_port"
    export PARLOR_HTTP_URL="http://127.0.0.1:$http_port"
    export PARLOR_JWT_SECRET_FILE="$parlor_work/jwt-secret"
}

#!/usr/bin/env bash
# Runs the peer benchmark (../shared/bench/peers.py) with liege added next to uWSGI, Gunicorn,
# Granian and the hyper reference. See docs/performance.md for what it measures and how to read
# the report. Takes ~30 min for a full run on 2 cores; do not run it on a shared machine while
# others work.
#
#   scripts/bench.sh [options] [-- peers.py options]
#
#   --dry-run        build nothing, install nothing: print what would be done and the resolved
#                    server commands (peers.py --dry-run)
#   --smoke          a short run (1 round, 2 s per app, 1 cold start): checks the set-up, ~4 min
#   --no-build       use target/release/liege as it is
#   --venv DIR       venv with uwsgi, gunicorn, granian (default: $PEERS_VENV, else
#                    <repo>/../peers-venv, or two levels up for a git worktree); made with
#                    /usr/bin/python3.11 if missing
#   --peers FILE     peers.py (default: $PEERS_PY, else ../shared/bench/peers.py next to the
#                    repository, or two levels up for a git worktree)
#   --out DIR        where the report goes (default: <repo>/target/bench)
#   -h, --help       this text
#
# Servers added to peers.py's defaults:
#   liege      target/release/liege --http-socket 127.0.0.1:{port} --wsgi-file {app} --processes 2 --disable-logging
#   liege-t4   the same with --threads 4 (compare with gunicorn-gthread 2x4 and uwsgi-t4, esp. on sleep)
#   uwsgi-t4   uWSGI --http-socket with --threads 4 (the "threads on" baseline of issue 3)
#
# Behind nginx (the seeds' topology: `uwsgi_pass` to a unix socket, `proxy_pass` to
# http-socket), `Connection: close`, keep-alive -c64 and -c1, liege against uWSGI only:
# scripts/bench_nginx.py (Python standard library; --help, --dry-run; ~12 min by default).
# See docs/performance.md, "Behind nginx".
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
dry_run=no
smoke=no
build=yes
venv=${PEERS_VENV:-}
peers=${PEERS_PY:-}
out="$repo/target/bench"
extra=()

usage() {
    awk 'NR > 1 && /^#/ {sub(/^# ?/, ""); print; next} NR > 1 {exit}' "$0"
    exit "${1:-0}"
}

while [ $# -gt 0 ]; do
    case "$1" in
    --dry-run) dry_run=yes; shift ;;
    --smoke) smoke=yes; shift ;;
    --no-build) build=no; shift ;;
    --venv) venv=$2; shift 2 ;;
    --peers) peers=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    -h | --help) usage 0 ;;
    --) shift; extra=("$@"); break ;;
    *) echo "bench.sh: unknown option $1 (peers.py options go after --)" >&2; usage 2 >&2 ;;
    esac
done

say() { echo "[bench] $*" >&2; }

# --- peers.py
if [ -z "$peers" ]; then
    for p in "$repo/../shared/bench/peers.py" "$repo/../../shared/bench/peers.py"; do
        if [ -f "$p" ]; then peers=$(cd "$(dirname "$p")" && pwd)/peers.py; break; fi
    done
fi
[ -n "$peers" ] && [ -f "$peers" ] || { say "peers.py not found (give --peers FILE or PEERS_PY)"; exit 1; }
bench_dir=$(dirname "$peers")
say "harness: $peers"

# --- tools
command -v wrk >/dev/null || { say "wrk not found: apt-get install wrk"; [ "$dry_run" = yes ] || exit 1; }
[ -x /usr/bin/python3.11 ] || { say "/usr/bin/python3.11 not found: bash scripts/install-deps.sh"; exit 1; }

# --- the peer servers' venv
if [ -z "$venv" ]; then
    venv="$repo/../peers-venv"
    for v in "$repo/../peers-venv" "$repo/../../peers-venv"; do
        if [ -x "$v/bin/uwsgi" ]; then venv=$v; break; fi
    done
fi
venv_ok=yes
for exe in uwsgi gunicorn granian; do
    [ -x "$venv/bin/$exe" ] || venv_ok=no
done
if [ "$venv_ok" = yes ]; then
    venv=$(cd "$venv" && pwd)
    say "peer venv: $venv"
elif [ "$dry_run" = yes ]; then
    say "would make the peer venv: /usr/bin/python3.11 -m venv $venv && $venv/bin/pip install uwsgi gunicorn granian"
else
    # uWSGI compiles from source (gcc, python3.11-dev): about a minute.
    say "making the peer venv in $venv (uwsgi compiles from source)"
    [ -x "$venv/bin/pip" ] || /usr/bin/python3.11 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check uwsgi gunicorn granian
    venv=$(cd "$venv" && pwd)
fi

# --- liege, and the hyper reference (built into our target/, nothing written next to peers.py)
liege="$repo/target/release/liege"
hyperref="${HYPERREF:-}"
if [ -z "$hyperref" ] && [ -x "$bench_dir/hyperref/target/release/hyperref" ]; then
    hyperref="$bench_dir/hyperref/target/release/hyperref"
fi
if [ "$dry_run" = yes ]; then
    [ "$build" = no ] || say "would run: cargo build --release (in $repo)"
    [ -n "$hyperref" ] || say "would run: cargo build --release --manifest-path $bench_dir/hyperref/Cargo.toml --target-dir $repo/target/hyperref"
else
    if [ "$build" = yes ]; then
        say "building liege (release)"
        (cd "$repo" && cargo build --release --quiet)
    fi
    if [ -z "$hyperref" ] && [ -f "$bench_dir/hyperref/Cargo.toml" ]; then
        say "building the hyper reference"
        cargo build --release --quiet --manifest-path "$bench_dir/hyperref/Cargo.toml" \
            --target-dir "$repo/target/hyperref"
        hyperref="$repo/target/hyperref/release/hyperref"
    fi
fi
[ -x "$liege" ] || [ "$dry_run" = yes ] || { say "$liege missing"; exit 1; }

# --- run
q() { printf "'%s'" "$1"; } # quoted for peers.py's shlex.split
liege_cmd="$(q "$liege") --http-socket 127.0.0.1:{port} --wsgi-file {app} --processes 2 --disable-logging"
args=(
    --venv "$venv"
    --add "liege=$liege_cmd"
    --add "liege-t4=$liege_cmd --threads 4"
    --add "uwsgi-t4={bin}uwsgi --http-socket 127.0.0.1:{port} --wsgi-file {app} --master --processes 2 --threads 4 --disable-logging"
)
[ -z "$hyperref" ] || args+=(--hyperref "$hyperref")
if [ "$smoke" = yes ]; then
    args+=(--rounds 1 --duration 2 --warmup 1 --cold 1)
fi
if [ "$dry_run" = yes ]; then
    args+=(--dry-run)
else
    mkdir -p "$out"
    stamp=$(date -u +%Y%m%dT%H%M%SZ)
    args+=(--out "$out/peers-$stamp.md" --json "$out/peers-$stamp.json")
    say "report: $out/peers-$stamp.md (raw records: .json)"
    say "liege: $("$liege" --version 2>/dev/null || echo '?'), commit $(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo '?')"
fi
say "python3 $peers$(printf ' %q' "${args[@]}" "${extra[@]}")"
exec python3 "$peers" "${args[@]}" "${extra[@]}"

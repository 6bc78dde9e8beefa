#!/usr/bin/env bash
# Long fuzz runs (CI only builds the targets; see fuzz/README.md).
#
#   scripts/fuzz.sh [-t SECONDS] [-T TIMEOUT] [TARGET...]
#
# Builds every target with `cargo +nightly fuzz build` (release with debug assertions and
# overflow checks, ASan; needs nightly and cargo-fuzz), then runs each TARGET (default: all
# of them, one after the other) for SECONDS (default 600, or $FUZZ_SECONDS) with one libFuzzer
# worker in fork mode, so a crash, a timeout or an out-of-memory is recorded and the run goes
# on. An input running longer than TIMEOUT seconds (default 25) is a hang. Everything runs
# under `nice -n 19`. (25 s because an ASan build on a loaded machine needs 5-10 s for an ini
# that hits liege-config's bound of 100 000 entries; libFuzzer's own default is 1200 s.)
#
# Corpus: fuzz/corpus/TARGET, seeded from fuzz/seeds/TARGET (and, for ini_expand, the ini
# files in vassals.example/ and tests/fixtures/). Findings: fuzz/artifacts/TARGET/
# (crash-*, timeout-*, oom-*); reproduce one with
#   fuzz/target/x86_64-unknown-linux-gnu/release/TARGET fuzz/artifacts/TARGET/crash-...
# Logs: target/fuzz-logs/TARGET.log. Prints executions, crashes, timeouts and OOMs per target;
# exits 1 if anything was found.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

secs=${FUZZ_SECONDS:-600}
timeout=${FUZZ_TIMEOUT:-25}
while getopts "t:T:h" opt; do
    case $opt in
    t) secs=$OPTARG ;;
    T) timeout=$OPTARG ;;
    *)
        sed -n '2,18p' "$0"
        exit 2
        ;;
    esac
done
shift $((OPTIND - 1))

if ! command -v cargo >/dev/null 2>&1 && [ -x "${HOME:-/root}/.cargo/bin/cargo" ]; then
    export PATH="${HOME:-/root}/.cargo/bin:$PATH"
fi

all_targets=$(sed -n 's/^name = "\(.*\)"$/\1/p' fuzz/Cargo.toml | grep -v '^liege-fuzz$')
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    read -r -a targets <<<"$(echo $all_targets)"
fi
for t in "${targets[@]}"; do
    if ! grep -qx "$t" <<<"$all_targets"; then
        echo "unknown fuzz target \`$t\` (targets: $(echo $all_targets))" >&2
        exit 2
    fi
done

echo "==> building fuzz targets"
t0=$SECONDS
nice -n 19 cargo +nightly fuzz build
echo "<== built in $((SECONDS - t0)) s"

bindir=$root/fuzz/target/x86_64-unknown-linux-gnu/release
mkdir -p target/fuzz-logs
summary=()
found=0
for t in "${targets[@]}"; do
    corpus=$root/fuzz/corpus/$t
    artifacts=$root/fuzz/artifacts/$t
    scratch=$root/target/fuzz-scratch/$t
    log=$root/target/fuzz-logs/$t.log
    mkdir -p "$corpus" "$artifacts"
    rm -rf "$scratch" && mkdir -p "$scratch"
    if [ -d "fuzz/seeds/$t" ]; then
        cp -n fuzz/seeds/"$t"/* "$corpus"/
    fi
    if [ "$t" = ini_expand ]; then
        for f in vassals.example/*.ini tests/fixtures/*.ini; do
            cp -n "$f" "$corpus/$(echo "$f" | tr / _)"
        done
    fi
    dict=()
    if [ -f "fuzz/dict/$t.dict" ]; then
        dict=("-dict=$root/fuzz/dict/$t.dict")
    fi
    before=$(find "$artifacts" -type f | sort)
    echo
    echo "==> $t: ${secs} s (timeout ${timeout} s per input), log $log"
    # The scratch dir is the cwd and LIEGE_FUZZ_SCRATCH: relative paths the target reads
    # resolve there. stdin is /dev/null so that reading it cannot block.
    rc=0
    (cd "$scratch" && LIEGE_FUZZ_SCRATCH=$scratch nice -n 19 "$bindir/$t" \
        -fork=1 -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1 \
        -max_total_time="$secs" -timeout="$timeout" -rss_limit_mb=2048 \
        -artifact_prefix="$artifacts/" "${dict[@]}" "$corpus" \
        </dev/null >"$log" 2>&1) || rc=$?
    # Fork mode prints "#EXECS: cov: ... oom/timeout/crash: O/T/C time: ..." as it goes.
    last=$(grep -E '^#[0-9]+: cov:' "$log" | tail -n 1 || true)
    execs=$(sed -n 's/^#\([0-9]*\): .*/\1/p' <<<"$last")
    otc=$(sed -n 's/.*oom\/timeout\/crash: \([0-9]*\/[0-9]*\/[0-9]*\).*/\1/p' <<<"$last")
    IFS=/ read -r ooms timeouts crashes <<<"${otc:-?/?/?}"
    # Fork mode keeps no child output: replay each new finding once to show what it is.
    new=0
    while read -r a; do
        [ -n "$a" ] || continue
        new=$((new + 1))
        echo "  finding $a:"
        (cd "$scratch" && LIEGE_FUZZ_SCRATCH=$scratch timeout $((timeout * 3)) nice -n 19 \
            "$bindir/$t" -timeout="$timeout" -rss_limit_mb=2048 "$a" </dev/null 2>&1 || true) |
            tee -a "$log.findings" | grep -E -m 3 "panicked at|^assertion|ERROR: |SUMMARY" | sed 's/^/    /' || true
    done < <(comm -13 <(echo "$before") <(find "$artifacts" -type f | sort))
    line="$t: executions ${execs:-?}, crashes ${crashes}, timeouts/hangs ${timeouts}, ooms ${ooms}, new artifacts ${new} (exit ${rc})"
    echo "<== $line"
    summary+=("$line")
    if [ "$rc" -ne 0 ] || [ "$new" -ne 0 ] || [ "${crashes}${timeouts}${ooms}" != 000 ]; then
        found=1
    fi
done

echo
echo "fuzz summary (${secs} s per target):"
printf '  %s\n' "${summary[@]}"
exit $found

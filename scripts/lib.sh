# shellcheck shell=bash
# Shared helpers for the edu-rs scripts. Source it; do not run it.

EDU_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
EDU_CACHE=${EDU_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/edu-rs}
# The LLVM suffix the kernel build uses (clang-19, ld.lld-19, ...).
EDU_LLVM=${EDU_LLVM:--19}
# The Linux series we build against.
EDU_LINUX_SERIES=7.3

say()  { printf '\033[1;34m==>\033[0m %s\n' "$*" >&2; }
warn() { printf '\033[1;33mwarning:\033[0m %s\n' "$*" >&2; }
die()  { printf '\033[1;31merror:\033[0m %s\n' "$*" >&2; exit 1; }

# Prefix a command with sudo when we are not root.
as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# Path of the Linux source tree: $LINUX_SRC, or the one setup extracted.
linux_src() {
    if [ -n "${LINUX_SRC:-}" ]; then
        [ -f "$LINUX_SRC/Makefile" ] || die "LINUX_SRC=$LINUX_SRC has no Makefile: point it at a Linux source tree"
        echo "$LINUX_SRC"
        return
    fi
    local d
    d=$(ls -d "$EDU_CACHE"/src/linux-source-"$EDU_LINUX_SERIES"* 2>/dev/null | sort -V | tail -n1)
    [ -n "$d" ] && [ -f "$d/Makefile" ] ||
        die "no Linux $EDU_LINUX_SERIES source: run scripts/setup, or set LINUX_SRC=/path/to/linux (or KDIR=/path/to/built/tree)"
    echo "$d"
}

# Run a long command, keeping its full output in a log file and showing a
# one-line progress ticker (elapsed time and the last line of output).
run_with_progress() {
    local label=$1 log=$2
    shift 2
    "$@" >"$log" 2>&1 &
    local pid=$! start=$SECONDS
    if [ -t 2 ]; then
        while kill -0 "$pid" 2>/dev/null; do
            printf '\r\033[K  %s [%3ds] %s' "$label" $((SECONDS - start)) "$(tail -n1 "$log" 2>/dev/null | cut -c1-60)" >&2
            sleep 1
        done
        printf '\r\033[K' >&2
    else
        # Not a terminal (CI): one line every 30 s, enough to show life.
        local next=30
        while kill -0 "$pid" 2>/dev/null; do
            sleep 1
            if [ $((SECONDS - start)) -ge $next ]; then
                printf '  %s: %ds, %s\n' "$label" $((SECONDS - start)) "$(tail -n1 "$log" 2>/dev/null | cut -c1-70)" >&2
                next=$((next + 30))
            fi
        done
    fi
    if ! wait "$pid"; then
        tail -n 40 "$log" >&2
        die "$label failed after $((SECONDS - start))s (full log: $log)"
    fi
    say "$label done in $((SECONDS - start))s"
}

# Is /dev/kvm a hardware-accelerated KVM (kvm_intel/kvm_amd) that we may
# use? The paravirtual kvm_pvm runs ordinary guests by emulation, far too
# slowly for Linux, so it does not count.
hw_kvm() {
    [ -c /dev/kvm ] && [ -r /dev/kvm ] && [ -w /dev/kvm ] || return 1
    [ -d /sys/module/kvm_pvm ] && return 1
    [ -d /sys/module/kvm_intel ] || [ -d /sys/module/kvm_amd ]
}

# One line describing the host's KVM, for logs.
kvm_description() {
    if [ ! -e /dev/kvm ]; then echo "no /dev/kvm"
    elif [ ! -r /dev/kvm ] || [ ! -w /dev/kvm ]; then echo "/dev/kvm not accessible to $(id -un)"
    elif [ -d /sys/module/kvm_pvm ]; then echo "/dev/kvm is kvm_pvm (paravirtual, emulates ordinary guests)"
    elif [ -d /sys/module/kvm_intel ]; then echo "/dev/kvm is kvm_intel (hardware VMX)"
    elif [ -d /sys/module/kvm_amd ]; then echo "/dev/kvm is kvm_amd (hardware SVM)"
    else echo "/dev/kvm of an unknown kind"
    fi
}

# Build edu.ko against a kernel build directory; prints the module's path.
# Kbuild builds from a snapshot of the sources (driver/ and the ABI file it
# includes, mtimes kept so rebuilds stay incremental) into
# build/<flavor>/driver: the test and debug kernels' modules do not overwrite
# each other, and an in-tree `make -C driver` by a developer does not get in
# the way. Warnings fail the build: the module must be warning-free.
build_driver() {
    local kdir=$1 flavor=$2 base="$EDU_ROOT/build/$2" log
    rm -rf "$base/src"
    mkdir -p "$base/src/driver" "$base/src/abi/src" "$base/driver"
    cp -p "$EDU_ROOT"/driver/Kbuild "$EDU_ROOT"/driver/*.rs "$base/src/driver/"
    cp -p "$EDU_ROOT"/abi/src/abi.rs "$base/src/abi/src/"
    log="$base/driver/build.log"
    if ! make -C "$kdir" M="$base/src/driver" MO="$base/driver" LLVM="$EDU_LLVM" modules >"$log" 2>&1; then
        cat "$log" >&2
        die "building driver/ against $kdir failed"
    fi
    if grep -qi 'warning' "$log"; then
        grep -i -B2 -A6 'warning' "$log" >&2
        die "driver/ builds with warnings (above); it must build cleanly"
    fi
    [ -f "$base/driver/edu.ko" ] || die "driver build produced no edu.ko in $base/driver"
    echo "$base/driver/edu.ko"
}

# Build a workspace binary as a static musl executable; prints its path.
build_static() {
    local pkg=$1 bin=${2:-$1} dir
    cargo build -q --release --target x86_64-unknown-linux-musl -p "$pkg" --manifest-path "$EDU_ROOT/Cargo.toml" >&2 ||
        die "cargo build of $pkg (static, musl) failed"
    dir=${CARGO_TARGET_DIR:-$EDU_ROOT/target}
    echo "$dir/x86_64-unknown-linux-musl/release/$bin"
}

# Build a workspace binary for this host (release); prints its path.
build_host() {
    local pkg=$1 bin=${2:-$1}
    cargo build -q --release -p "$pkg" --manifest-path "$EDU_ROOT/Cargo.toml" >&2 ||
        die "cargo build of $pkg failed"
    echo "${CARGO_TARGET_DIR:-$EDU_ROOT/target}/release/$bin"
}

# --- a terminal for a person (run-guest --interactive) -------------------------
# The escape key of tty_session, as the terminal's intr character and as a
# person reads it.
EDU_TTY_ESCAPE='^]' EDU_TTY_ESCAPE_NAME='Ctrl-]'

# tty_session CMD...: runs CMD (a VMM whose serial console is its standard
# input and output) for a person at this terminal, and returns its status;
# EDU_TTY_ESCAPED is 1 when the person left with the escape key.
#
# The terminal is raw while CMD runs: every key goes to CMD as a byte (no
# echo, no line editing; Ctrl-C, Ctrl-Z and Ctrl-\ are bytes for the guest,
# whose own console makes them signals), except the escape key Ctrl-], which
# the terminal itself turns into SIGINT to CMD, like telnet's: it works with
# every VMM at once, including a nested one, without the VMM knowing. CMD
# gets its own open file of the terminal (/dev/tty), so flags it sets there
# (QEMU's O_NONBLOCK) stay off the caller's. The terminal's settings are
# saved first and put back however CMD ends: it exits, crashes, or is killed
# (SIGKILL included); SIGTERM or SIGHUP to this script stops CMD first.
tty_session() {
    local saved pid rc= r traps
    saved=$(stty -g </dev/tty) || die "$(basename "$0"): no terminal to run an interactive guest on"
    traps=$(trap -p INT TERM HUP)
    EDU_TTY_ESCAPED=
    # Not an empty trap: CMD must not inherit SIGINT ignored.
    trap 'EDU_TTY_ESCAPED=1' INT
    trap 'kill -TERM "$pid" 2>/dev/null' TERM HUP
    stty raw -echo -iexten opost isig intr "$EDU_TTY_ESCAPE" quit undef susp undef </dev/tty
    "$@" </dev/tty &
    pid=$!
    # wait returns early (> 128) when a trapped signal arrives; CMD may
    # still run then.
    while [ -z "$rc" ]; do
        wait "$pid" && r=0 || r=$?
        kill -0 "$pid" 2>/dev/null || rc=$r
    done
    stty "$saved" </dev/tty
    trap - INT TERM HUP
    eval "$traps"
    return "$rc"
}

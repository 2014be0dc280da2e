# shellcheck shell=bash
# Shared helpers for the edu-rs scripts. Source it; do not run it.

EDU_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
EDU_CACHE=${EDU_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/edu-rs}
# The LLVM suffix the kernel build uses (clang-19, ld.lld-19, ...).
EDU_LLVM=${EDU_LLVM:--19}
# The Linux series we build against.
EDU_LINUX_SERIES=7.3
EDU_SCRIPT=$(basename "$0")

say()  { printf '\033[1;34m==>\033[0m %s\n' "$*" >&2; }
warn() { printf '\033[1;33mwarning:\033[0m %s\n' "$*" >&2; }
die()  { printf '\033[1;31merror:\033[0m %s\n' "$*" >&2; exit 1; }

# Prefix a command with sudo when we are not root.
as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# --- command line -------------------------------------------------------------
# The calling script's help: its header comment, from line 2 to the first
# line that is not a comment.
usage() { sed -n '2,/^[^#]/{/^#/{s/^# \{0,1\}//;p}}' "$0"; }

# need_value OPTION ARGC: an option that takes a value must have one.
need_value() { [ "$2" -ge 2 ] || die "$EDU_SCRIPT: $1 needs a value (see --help)"; }

# --- interruption -------------------------------------------------------------
# Ctrl-C (SIGINT to the terminal's foreground process group), SIGTERM or
# SIGHUP stop everything a script started and end it with status 130.
#
# Long-running children run through group_start/group_wait (or group): in a
# session and process group of their own, so the handler can stop each one
# whole (make -j with its compilers, a VMM with all it started, another of
# our scripts with its own groups), and in the background, so a signal ends
# the wait at once instead of after the child. The handler sends SIGTERM to
# every group, gives it a grace period, then SIGKILL. A script started by
# one of ours is one level deeper and has a shorter grace, so it finishes
# stopping its own groups before its caller would kill it.
EDU_DEPTH=${EDU_DEPTH_NEXT:-0}
export EDU_DEPTH_NEXT=$((EDU_DEPTH + 1))
EDU_GROUPS=()
EDU_DOING=
if [ "$EDU_DEPTH" = 0 ] && [ -t 0 ]; then EDU_STTY=$(stty -g 2>/dev/null || true); fi
# The script's own standard error, for the interruption's line: the handler
# may run inside a function whose output goes to a log.
exec {EDU_STDERR}>&2

# group_start CMD...: starts CMD (an external command) as a group of its own;
# its pid, which is also its process group and session, is in EDU_GROUP_PID.
# Not inside $(...) or a pipeline: the group must be known to this shell.
group_start() {
    setsid "$@" &
    EDU_GROUP_PID=$!
    EDU_GROUPS+=("$EDU_GROUP_PID")
}

# group_wait PID: waits for the group's leader, kills whatever of the group
# outlived it, and returns the leader's status.
group_wait() {
    local pid=$1 rc g kept=()
    wait "$pid" && rc=0 || rc=$?
    kill -KILL -- "-$pid" 2>/dev/null || true # usually nothing is left
    for g in "${EDU_GROUPS[@]}"; do [ "$g" = "$pid" ] || kept+=("$g"); done
    EDU_GROUPS=(${kept[@]+"${kept[@]}"})
    return "$rc"
}

# group CMD...: group_start and group_wait in one.
group() {
    group_start "$@"
    group_wait "$EDU_GROUP_PID"
}

# Whether any process of the session SID still runs (zombies do not count).
session_alive() { ps -o stat= -s "$1" 2>/dev/null | grep -qv '^Z'; }

stop_groups() {
    local g n alive grace=$((16 - 4 * EDU_DEPTH))
    [ "$grace" -ge 2 ] || grace=2
    for g in ${EDU_GROUPS[@]+"${EDU_GROUPS[@]}"}; do
        kill -TERM -- "-$g" 2>/dev/null || kill -TERM "$g" 2>/dev/null
    done
    for ((n = 0; n < grace * 5; n++)); do
        alive=
        for g in ${EDU_GROUPS[@]+"${EDU_GROUPS[@]}"}; do session_alive "$g" && alive=1; done
        [ -n "$alive" ] || break
        sleep 0.2
    done
    for g in ${EDU_GROUPS[@]+"${EDU_GROUPS[@]}"}; do
        kill -KILL -- "-$g" 2>/dev/null
        pkill -KILL -s "$g" 2>/dev/null
    done
}

interrupted() {
    set +e
    trap '' INT TERM HUP
    stop_groups
    local jobs
    jobs=$(jobs -p)
    # shellcheck disable=SC2086 # a list of pids
    [ -z "$jobs" ] || kill $jobs 2>/dev/null
    if [ "$EDU_DEPTH" = 0 ]; then
        [ -z "${EDU_STTY:-}" ] || stty "$EDU_STTY" 2>/dev/null
        printf '\n\033[1;31m%s: interrupted by SIG%s%s; stopped everything it had started\033[0m\n' \
            "$EDU_SCRIPT" "$1" "${EDU_DOING:+ during $EDU_DOING}" >&"$EDU_STDERR"
    fi
    exit 130
}
trap 'interrupted INT' INT
trap 'interrupted TERM' TERM
trap 'interrupted HUP' HUP

# Run a long command, keeping its full output in a log file and showing a
# one-line progress ticker (elapsed time and the last line of output).
run_with_progress() {
    local label=$1 log=$2 pid start=$SECONDS next=30
    shift 2
    group_start "$@" >"$log" 2>&1
    pid=$EDU_GROUP_PID
    while kill -0 "$pid" 2>/dev/null; do
        if [ -t 2 ]; then
            printf '\r\033[K  %s [%3ds] %s' "$label" $((SECONDS - start)) "$(tail -n1 "$log" 2>/dev/null | cut -c1-60)" >&2
        elif [ $((SECONDS - start)) -ge $next ]; then
            # Not a terminal (CI): one line every 30 s, enough to show life.
            printf '  %s: %ds, %s\n' "$label" $((SECONDS - start)) "$(tail -n1 "$log" 2>/dev/null | cut -c1-70)" >&2
            next=$((next + 30))
        fi
        sleep 1 &
        wait $!
    done
    [ -t 2 ] && printf '\r\033[K' >&2
    if ! group_wait "$pid"; then
        tail -n 40 "$log" >&2
        die "$label failed after $((SECONDS - start))s (full log: $log)"
    fi
    say "$label done in $((SECONDS - start))s"
}

# --- Linux source and KVM -----------------------------------------------------
# Path of the Linux source tree, absolute: $LINUX_SRC, or the one setup
# extracted.
linux_src() {
    if [ -n "${LINUX_SRC:-}" ]; then
        [ -f "$LINUX_SRC/Makefile" ] || die "LINUX_SRC=$LINUX_SRC has no Makefile: point it at a Linux source tree"
        (cd "$LINUX_SRC" && pwd -P)
        return
    fi
    local d found=
    while IFS= read -r d; do
        [ -f "$d/.extracted" ] && found=${d%/}
    done < <(ls -d "$EDU_CACHE"/src/linux-source-"$EDU_LINUX_SERIES"-*/ 2>/dev/null | sort -V)
    [ -n "$found" ] || die "no Linux $EDU_LINUX_SERIES source: run scripts/setup, or set LINUX_SRC=/path/to/linux"
    echo "$found"
}

# What /dev/kvm is to us: missing, pvm (the paravirtual kvm_pvm, which runs
# ordinary guests by emulation, far too slowly for Linux), hw (kvm_intel or
# kvm_amd, usable), no-access (hardware KVM this user cannot open) or other.
# EDU_KVM_DEV and EDU_SYS_MODULE name other paths (for scripts/check-scripts).
kvm_kind() {
    local dev=${EDU_KVM_DEV:-/dev/kvm} mod=${EDU_SYS_MODULE:-/sys/module}
    if [ ! -e "$dev" ]; then echo missing
    elif [ -d "$mod/kvm_pvm" ]; then echo pvm
    elif [ ! -d "$mod/kvm_intel" ] && [ ! -d "$mod/kvm_amd" ]; then echo other
    elif [ -r "$dev" ] && [ -w "$dev" ]; then echo hw
    else echo no-access
    fi
}

# One line describing the host's KVM, for logs.
kvm_description() {
    case $(kvm_kind) in
    missing) echo "no /dev/kvm" ;;
    pvm) echo "/dev/kvm is kvm_pvm (paravirtual, emulates ordinary guests)" ;;
    hw) if [ -d "${EDU_SYS_MODULE:-/sys/module}/kvm_intel" ]; then echo "/dev/kvm is kvm_intel (hardware VMX)"; else echo "/dev/kvm is kvm_amd (hardware SVM)"; fi ;;
    no-access) echo "/dev/kvm is a hardware KVM that $(id -un) cannot open" ;;
    *) echo "/dev/kvm of an unknown kind" ;;
    esac
}

# --- guest runs ---------------------------------------------------------------
# guest_verdict CONSOLE VMM_STATUS PLACEMENT WHERE TIMEOUT: run-guest's
# verdict on a finished run: says what happened and exits with the guest's
# status N from its end line "EDU-RS-GUEST-END status=N", provided the VMM
# ended cleanly: directly, its exit status is 0; nested, also the L2 VMM's,
# which L1's init reports as "EDU-RS-L1-END vmm_status=N". Otherwise 123
# (the VMM failed), 124 (timeout), 125 (no end line) or 126 (kernel panic).
guest_verdict() {
    local console vmm_rc=$2 placement=$3 where=$4 timeout=$5 end l2 failed=
    console=$(tr -d '\r' <"$1")
    end=$(sed -n 's/^.*EDU-RS-GUEST-END status=\([0-9]*\).*$/\1/p' <<<"$console" | tail -n1)
    if [ "$vmm_rc" != 0 ]; then
        failed="the VMM exited with status $vmm_rc"
    elif [ "$placement" = nested ]; then
        l2=$(sed -n 's/^EDU-RS-L1-END vmm_status=\([0-9]*\)$/\1/p' <<<"$console" | tail -n1)
        if [ -z "$l2" ]; then
            failed="L1 reported no status of the L2 VMM (no EDU-RS-L1-END line)"
        elif [ "$l2" != 0 ]; then
            failed="the L2 VMM exited with status $l2 (EDU-RS-L1-END)"
        fi
    fi
    if [ "$vmm_rc" = 124 ] || [ "$vmm_rc" = 137 ]; then
        warn "$EDU_SCRIPT: timed out after ${timeout}s ($where)"
        exit 124
    elif [ -z "$end" ] && grep -q 'Kernel panic' <<<"$console"; then
        warn "$EDU_SCRIPT: the guest kernel panicked ($where)"
        exit 126
    elif [ -n "$failed" ]; then
        warn "$EDU_SCRIPT: $failed${end:+, although the guest ended with status $end} ($where)"
        exit 123
    elif [ -n "$end" ]; then
        say "$EDU_SCRIPT: guest exited with status $end ($where)"
        exit "$end"
    fi
    warn "$EDU_SCRIPT: no end line from the guest; the VMM exited with 0 ($where)"
    exit 125
}

# kernel_patches_applied KDIR...: every kbuild/patches/*.patch is applied in
# the source each kernel build KDIR was made from (its `source` link) and
# not in the shared source that build-kernel copied.
kernel_patches_applied() {
    local kdir src p
    src=$(linux_src) || return 1
    for kdir in "$@"; do
        for p in "$EDU_ROOT"/kbuild/patches/*.patch; do
            [ -f "$p" ] || continue
            patch -d "$kdir/source" -p1 -R --forward --dry-run --batch -s <"$p" >/dev/null ||
                { echo "${p#"$EDU_ROOT"/} is not applied in $kdir/source"; return 1; }
            patch -d "$src" -p1 --dry-run --forward --batch -s <"$p" >/dev/null ||
                { echo "${p#"$EDU_ROOT"/} does not apply to $src: was the shared source modified?"; return 1; }
            echo "${p#"$EDU_ROOT"/}: applied in $(readlink "$kdir/source"), not in $src"
        done
    done
}

# --- builds -------------------------------------------------------------------
# build_kmod KDIR SRC OBJ WHAT [CLIPPY]: builds an external module against
# the kernel build directory KDIR, Kbuild sources in SRC, objects in OBJ
# (Kbuild's MO=; log OBJ/build.log). With CLIPPY the kernel's CLIPPY=1 lints
# its Rust code as it builds. Warnings fail the build: our modules must be
# warning-free. WHAT names the module in error messages.
build_kmod() {
    local kdir=$1 src=$2 obj=$3 what=$4 clippy=${5:-} log=$3/build.log
    mkdir -p "$obj"
    if ! group make -C "$kdir" M="$src" MO="$obj" LLVM="$EDU_LLVM" ${clippy:+CLIPPY=1} modules >"$log" 2>&1; then
        cat "$log" >&2
        die "building $what against $kdir failed"
    fi
    if grep -qi 'warning' "$log"; then
        grep -i -B2 -A6 'warning' "$log" >&2
        die "$what builds with warnings${clippy:+ (CLIPPY=1)} (above); it must build cleanly"
    fi
}

# build_driver KDIR DIR [CLIPPY]: builds edu.ko against KDIR into DIR
# (DIR/out/edu.ko, log DIR/out/build.log), from a snapshot of driver/ and
# the ABI file it includes, so an edit made meanwhile does not end up half
# in the module. DIR belongs to one run: two runs never share it.
build_driver() {
    local kdir=$1 dir=$2 clippy=${3:-}
    rm -rf "$dir" && mkdir -p "$dir/src/driver" "$dir/src/abi/src" "$dir/out"
    cp -p "$EDU_ROOT"/driver/Kbuild "$EDU_ROOT"/driver/*.rs "$dir/src/driver/"
    cp -p "$EDU_ROOT"/abi/src/abi.rs "$dir/src/abi/src/"
    build_kmod "$kdir" "$dir/src/driver" "$dir/out" driver/ "$clippy"
    [ -f "$dir/out/edu.ko" ] || die "driver build produced no edu.ko in $dir/out"
}

# build_c_lab KDIR DIR: builds the C lab module test (tests/c-lab-module)
# against KDIR into DIR: edu_lab.ko, the static edu-lab-ioctl and c-lab-test,
# laid out as a guest root overlay in DIR/overlay (for run-guest --overlay).
build_c_lab() {
    local kdir=$1 dir=$2 from="$EDU_ROOT/tests/c-lab-module"
    rm -rf "$dir"
    mkdir -p "$dir/src" "$dir/overlay/lib/modules" "$dir/overlay/bin"
    cp -p "$from"/Kbuild "$from"/edu_lab.c "$from"/edu_lab.h "$dir/src/"
    build_kmod "$kdir" "$dir/src" "$dir/obj" tests/c-lab-module
    cp "$dir/obj/edu_lab.ko" "$dir/overlay/lib/modules/"
    gcc -static -O2 -Wall -Wextra -Werror -I"$from" -o "$dir/overlay/bin/edu-lab-ioctl" "$from/edu-lab-ioctl.c" ||
        die "building tests/c-lab-module/edu-lab-ioctl.c (static, gcc) failed"
    install -m 0755 "$from/c-lab-test" "$dir/overlay/bin/c-lab-test"
}

# The path of a workspace binary built by build_static.
static_bin() { echo "${CARGO_TARGET_DIR:-$EDU_ROOT/target}/x86_64-unknown-linux-musl/release/$1"; }

# Build a workspace binary as a static musl executable (at static_bin PKG).
build_static() {
    group cargo build -q --release --target x86_64-unknown-linux-musl -p "$1" \
        --manifest-path "$EDU_ROOT/Cargo.toml" >&2 ||
        die "cargo build of $1 (static, musl) failed"
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
    # A command started with & by a shell without job control has SIGINT
    # and SIGQUIT ignored, and a VMM that does not catch SIGINT itself (a
    # stand-in, edu-vmm) would outlive Ctrl-]: env gives them back.
    env --default-signal=INT,QUIT "$@" </dev/tty &
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

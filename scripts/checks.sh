# shellcheck shell=bash
# The verdicts scripts/test reaches on a guest case's console log,
# $logs/NAME.log. Source it after lib.sh, with pass/fail defined;
# scripts/check-scripts runs these same functions on sample logs.

# Kernel reports of a bug: oopses, BUG and WARNING splats, lockdep, slab
# debugging, Rust panics, hung tasks and stalls. None may appear anywhere in
# a guest's console: before or after its end line, from L2 or a nested L1.
KERNEL_ERRORS='Oops|BUG:|(^|\] )BUG |WARNING:|Call Trace|rust_panic|panicked at|Kernel panic'
KERNEL_ERRORS+='|general protection fault|Unable to handle kernel|INFO: possible|INFO: task .* blocked'
KERNEL_ERRORS+='|circular locking|inconsistent lock|DMA-API: .*device driver|kobject.*(not initialized|already)'
KERNEL_ERRORS+='|UBSAN:|KFENCE:|soft lockup|hard LOCKUP|detected stall|Poison overwritten|Redzone overwritten'
KERNEL_ERRORS+='|refcount_t:|list_(add|del) corruption'

# The probe line the driver logs for each bound device.
PROBE='edu 0000:00:0[0-9a-f]\.0: .*1234:11e8.*0x010000ed'

# The selftest cases that skip with one edu device.
ONE_DEVICE_SKIPS=(two-devices two-devices-parallel)

# expect NAME REGEX [COUNT]: the case's console has at least COUNT (default
# 1) lines matching the extended REGEX.
expect() {
    local n
    n=$(tr -d '\r' <"$logs/$1.log" | grep -cE -- "$2")
    if [ "$n" -ge "${3:-1}" ]; then return 0; fi
    fail "$1" "expected ${3:-1} line(s) matching /$2/, found $n"
    return 1
}

# reject NAME REGEX: no line of the case's console matches REGEX.
reject() {
    if tr -d '\r' <"$logs/$1.log" | grep -E -- "$2" >"$logs/$1.rejected"; then
        head -n 20 "$logs/$1.rejected"
        fail "$1" "found lines matching /$2/ (above)"
        return 1
    fi
}

# check_edu_vmm NAME: a run on edu-vmm (nested: the static build that
# ships) put its production seccomp filters on every thread, and no filter
# refused a call. scripts/test adds it to every edu-vmm case.
check_edu_vmm() {
    expect "$1" 'seccomp filters installed on every thread' &&
        reject "$1" 'seccomp: the .* filter refused'
}

# Kernel messages a case provokes on purpose, by case name: an extended
# regex of lines kernel_clean leaves out for that case (whose own check then
# accounts for them). For example, a fault-injection case whose failed
# allocation of a /proc/irq file makes free_irq warn in remove_proc_entry.
declare -A KERNEL_NOISE=()

# kernel_clean NAME [FILE...]: no kernel bug report in the case's console
# (or the FILEs) but its KERNEL_NOISE.
kernel_clean() {
    local name=$1 noise=${KERNEL_NOISE[$1]:-'^$'} files
    shift
    files=("$@")
    [ ${#files[@]} -gt 0 ] || files=("$logs/$name.log")
    if cat "${files[@]}" | tr -d '\r' | grep -vE -- "$noise" | grep -E -- "$KERNEL_ERRORS" >"$logs/$name.rejected"; then
        head -n 20 "$logs/$name.rejected"
        fail "$name" "the kernel reported a bug (above; log: ${files[*]##*/})"
        return 1
    fi
}

# probes NAME N: the driver probed exactly N distinct devices (a device
# probed again after a rebind counts once).
probes() {
    local n
    n=$(tr -d '\r' <"$logs/$1.log" | grep -oE -- "$PROBE" | grep -oE '0000:00:[0-9a-f]{2}\.0' | sort -u | wc -l)
    [ "$n" = "$2" ] && return 0
    fail "$1" "expected probe lines of $2 distinct device(s), found $n"
    return 1
}

ended_ok() { expect "$1" 'EDU-RS-GUEST-END status=0([^0-9]|$)'; }

# ticked NAME: the guest's local timer fired before its init ran (the init
# line's timer-irqs). A guest without a tick has no timeouts, and nested
# that was L1's TSC rate (docs/vmm.md, "A stalled guest timer"). A console
# without an init line is left to the case's own checks.
ticked() {
    local n
    n=$(tr -d '\r' <"$logs/$1.log" | sed -n 's/^EDU-RS-GUEST-START .* timer-irqs \([0-9]*\).*/\1/p' | head -n1)
    [ "${n:-1}" != 0 ] && return 0
    fail "$1" "the guest's local timer never fired before init (timer-irqs 0): it has no timeouts (docs/vmm.md, \"A stalled guest timer\")"
    return 1
}

# check_l1_tsc NAME: nested, L1's early TSC calibration was off the value it
# refined to by more than KVM's tolerance (250 ppm: the case's premise), and
# still L1's KVM took the L2 VMM's TSC rate (docs/vmm.md, "A stalled guest
# timer"). That L2's timer ticked before init is `ticked`, which case_
# holds every case to.
check_l1_tsc() {
    local early refined
    early=$(sed -n 's/.*\] tsc: Detected \([0-9.]*\) MHz processor.*/\1/p' "$logs/$1.log" | head -n1)
    refined=$(sed -n 's/.*Refined TSC clocksource calibration: \([0-9.]*\) MHz.*/\1/p' "$logs/$1.log" | head -n1)
    if [ -z "$early" ] || [ -z "$refined" ]; then
        fail "$1" "L1 printed no early ('tsc: Detected') or no refined TSC calibration (tsc_early_khz from the host's cpu MHz?)"
        return 1
    fi
    if ! awk -v e="$early" -v r="$refined" 'BEGIN { d = (e - r) / r; exit !(d > 0.00025 || d < -0.00025) }'; then
        fail "$1" "premise: L1's early TSC calibration ($early MHz) is within 250 ppm of its refined one ($refined MHz)"
        return 1
    fi
    ended_ok "$1" && reject "$1" 'user requested TSC rate below hardware speed'
}

check_probe_1() { probes "$1" 1 && ended_ok "$1"; }
check_probe_2() { probes "$1" 2 && ended_ok "$1"; }

# selftest NAME [SKIP...]: the framed `edu-test --json selftest` report has
# every listed case exactly once, the SKIPs skipped and every other case
# passed (edu-verdict; $EDU_VERDICT is the binary, $SELFTEST_LIST the output
# of `edu-test selftest --list`).
selftest() {
    local name=$1 s args=() out
    shift
    for s; do args+=(--skip "$s"); done
    if out=$("$EDU_VERDICT" selftest --log "$logs/$name.log" --list "$SELFTEST_LIST" ${args[@]+"${args[@]}"} 2>&1); then
        echo "  $out"
        return 0
    fi
    printf '%s\n' "$out" | head -n 30
    fail "$name" "the selftest's report is not the expected one (above)"
    return 1
}

check_selftest_one() { ended_ok "$1" && selftest "$1" "${ONE_DEVICE_SKIPS[@]}"; }
check_selftest_msi() { check_selftest_one "$1" && expect "$1" '"irq_mode":"msi"'; }
check_selftest_intx() { check_selftest_one "$1" && expect "$1" '"irq_mode":"intx"'; }
check_selftest_two() { ended_ok "$1" && selftest "$1" && probes "$1" 2; }
check_selftest_debug() { check_selftest_two "$1" && expect "$1" '"irq_mode":"msi"'; }

# The lab flow's kernel log, in the lab report's format. The driver logs
# with dev_info!, so each line may carry the "edu 0000:00:02.0: " prefix.
check_lab() {
    local n=$1 L='\] (edu [0-9a-f:.]+: )?'
    ended_ok "$n" &&
        expect "$n" '^init: pci_edu has major [0-9]+' &&
        expect "$n" "${L}length 100000$" &&
        expect "$n" "${L}config 0 34$" && expect "$n" "${L}config 1 12$" &&
        expect "$n" "${L}config 2 e8$" && expect "$n" "${L}config 3 11$" &&
        expect "$n" "${L}config 3f [0-9a-f]+$" &&
        expect "$n" "${L}dev->irq [0-9a-f]+$" &&
        expect "$n" "${L}io 0 10000ed$" && expect "$n" "${L}io 94 [0-9a-f]+$" &&
        expect "$n" "${L}irq_handler irq = [0-9]+ dev = [0-9]+ irq_status = 12345678$" &&
        expect "$n" "${L}receive a FACTORIAL interrupter!$" &&
        expect "$n" "${L}irq_handler irq = [0-9]+ dev = [0-9]+ irq_status = 1$" &&
        expect "$n" "${L}computing result 375f00$" &&
        expect "$n" "${L}receive a DMA write interrupter!$" &&
        expect "$n" "${L}receive a DMA read interrupter!$" &&
        expect "$n" "${L}irq_handler irq = [0-9]+ dev = [0-9]+ irq_status = 100$" 2
}

# A DMA that outlives the driver's wait (edu-vmm's DMA slowed to 3 s, the
# driver waits 2 s): the caller gets ETIMEDOUT, the device keeps working,
# the abandoned DMA still lands (read back after reloading the module with
# a longer wait), and the device counts both DMAs as completed.
check_late_dma() {
    ended_ok "$1" &&
        expect "$1" 'EDU_IOC_DMA_TO_DEVICE: ETIMEDOUT' && expect "$1" '^write-rc=1$' &&
        expect "$1" '^5! mod 2\^32 = 120 ' && expect "$1" '^late-dma-ok$' && expect "$1" '^read-rc=0$' &&
        expect "$1" 'dma_completed: 2,' && reject "$1" 'interrupt_errors: [1-9]'
}

# Issue 11, the driver's robustness cases (scripts/guest/hardening).
HARDENING=(--overlay scripts/guest/hardening)
check_hardening() {
    ended_ok "$1" && expect "$1" '^edu-hardening: 0 failed$' && reject "$1" '^FAIL '
}
check_hardening_qemu() {
    check_hardening "$1" && expect "$1" '^ok   read-only: ' 7 && expect "$1" '^ok   all-ones: ' 3 &&
        expect "$1" '^ok   timeout-param: ' 4 &&
        expect "$1" '^ok   late-factorial: after the reload: 5! mod 2\^32 = 120 ' &&
        expect "$1" '^ok   uffd-.*: unbind: ok ' 4 && expect "$1" "^ok   uffd-.*: another process's ioctls ended" 4
}
# bind-faults: the kernel tolerates a failed allocation among request_irq's
# /proc/irq/N files and then warns when free_irq removes the missing one
# (remove_proc_entry "name 'smp_affinity'", called by unregister_irq_proc):
# the kernel's own noise, left out by kernel_clean and counted here: every
# WARNING must be one of those, reached from unregister_irq_proc.
# irq_mode=msi: on the debug kernel under TCG, ACPI's _PRT method times out
# (AE_AML_LOOP_TIMEOUT), so INTx has no route, and a bind whose MSI
# allocation failed would fall back to a dead INTx line.
KERNEL_NOISE[hardening-bind-faults-qemu-debug]='WARNING: fs/proc/generic.c:[0-9]* at remove_proc_entry|Call Trace:'
check_bind_faults() {
    local log="$logs/$1.log" w p u
    check_hardening "$1" && expect "$1" '^ok   bind-faults: [0-9]+ allocations' 2 || return 1
    w=$(tr -d '\r' <"$log" | grep -c 'WARNING:')
    p=$(tr -d '\r' <"$log" | grep -c 'WARNING: fs/proc/generic.c:[0-9]* at remove_proc_entry')
    u=$(tr -d '\r' <"$log" | grep -c ' unregister_irq_proc+')
    [ "$w" = "$p" ] && [ "$p" = "$u" ] ||
        { fail "$1" "$w warnings, of which $p from remove_proc_entry and $u reached from unregister_irq_proc"; return 1; }
}
check_late_dma_reload() {
    check_hardening "$1" && expect "$1" '^ok   late-dma: the first DMA read after the reload returned late-dma-ok$'
}

# Issue 9, the traced runs: build/test-logs/NAME.trace is what
# `run-guest --trace` wrote.
trace_tool=
trace_tool() {
    [ -n "$trace_tool" ] || trace_tool=$(build_host edu-trace-tool edu-trace) || return 1
    echo "$trace_tool"
}
# check_trace NAME SOURCES: the lab chain, at every layer in SOURCES.
check_trace() {
    local dir="$logs/$1.trace" tool
    tool=$(trace_tool) || { fail "$1" "cannot build edu-trace"; return 1; }
    if ! "$tool" check "$dir" --require "$2" >"$logs/$1.check" 2>&1; then
        cat "$logs/$1.check"
        fail "$1" "edu-trace check (build/test-logs/$1.check)"
        return 1
    fi
    grep -q '^## FACTORIAL_CMD' "$dir/report.md" || { fail "$1" "report.md has no FACTORIAL_CMD section"; return 1; }
}
# check_accesses NAME: each lab command made exactly as many edu register
# accesses as docs/driver.md ("Device accesses per operation") says it
# needs, counted from the run's report.md (issue 12, item 4).
check_accesses() {
    local report="$logs/$1.trace/report.md" cmd want got
    for cmd in SEND_INTERRUPT_CMD:3 FACTORIAL_CMD:4 DMA_WRITE_CMD:6 DMA_READ_CMD:6; do
        want=${cmd#*:} cmd=${cmd%:*}
        got=$(awk -F'|' -v cmd="$cmd" '/^## /{sec=$0} sec=="## " cmd && $2~/^ *edu0 *$/{n+=$4+$5} END{print n+0}' "$report")
        if [ "$got" != "$want" ]; then
            fail "$1" "$cmd made $got edu register accesses (report.md), docs/driver.md says $want"
            return 1
        fi
    done
    echo "  ($1: edu register accesses per lab command as docs/driver.md says)"
}
# check_page NAME: the run's page in headless Chromium shows exactly the
# events edu-trace counts for the whole run and for FACTORIAL_CMD's view,
# and inks its lanes; a screenshot is kept as build/test-logs/NAME.png.
check_page() {
    local dir="$logs/$1.trace" tool view want dom got inked
    tool=$(trace_tool) || return 1
    for view in "" "FACTORIAL_CMD"; do
        want=$("$tool" in-view "$dir" ${view:+--cmd "$view"}) || { fail "$1" "edu-trace in-view"; return 1; }
        dom=$(timeout 180 chromium-headless-shell --no-sandbox --headless --disable-gpu --window-size=1400,900 \
            --virtual-time-budget=30000 --dump-dom "file://$dir/timeline.html${view:+#cmd=$view}" 2>/dev/null)
        got=$(grep -o 'data-visible="[0-9]*"' <<<"$dom" | tr -dc 0-9)
        inked=$(grep -o 'data-inked="[0-9]*"' <<<"$dom" | tr -dc 0-9)
        echo "  ($1 page${view:+ at $view}: $got events in view, edu-trace says $want; ${inked:-0} inked pixels)"
        if [ "$got" != "$want" ] || [ "${inked:-0}" -eq 0 ]; then
            fail "$1" "the page${view:+ at #cmd=$view} shows ${got:-nothing} events (expected $want), ${inked:-0} inked pixels"
            return 1
        fi
    done
    timeout 180 chromium-headless-shell --no-sandbox --headless --disable-gpu --window-size=1400,900 \
        --virtual-time-budget=30000 --screenshot="$logs/$1.png" "file://$dir/timeline.html" >/dev/null 2>&1
    [ -s "$logs/$1.png" ] || { fail "$1" "no screenshot"; return 1; }
}
# edu-vmm nested has KVM's layer (L1's tracefs); directly on a hardware
# KVM it has it only with --trace-kvm, which needs root.
trace_kvm_layer=guest,kvm
[ "$(kvm_kind)" = hw ] && trace_kvm_layer=guest
check_trace_edu_vmm() { ended_ok "$1" && check_trace "$1" "$trace_kvm_layer" && check_accesses "$1" && check_page "$1"; }
check_trace_qemu() { ended_ok "$1" && check_trace "$1" guest && check_accesses "$1" && check_page "$1"; }

# Issue 11, item 6: the classic C lab driver (tests/c-lab-module) on every VMM.
check_c_lab() {
    ended_ok "$1" && expect "$1" '^10! = 3628800$' &&
        expect "$1" '^read BAR0 pages 1\.\.255, .*: 255 all ones, 0 other$' && expect "$1" '^c-lab: ok$' &&
        reject "$1" 'KVM internal error'
}

# Issue 10: the boot log and ACPI on edu-vmm.
# check_bootlog NAME: every kernel line at warning level or above that the
# case's guest printed (edubootlog=1) is one tests/bootlog-allow.txt allows
# for the VMM that ran it (scripts/check-bootlog).
check_bootlog() {
    local name=$1 vmm out
    vmm=$(sed -n 's/^.*run-guest: vmm \([a-z-]*\),.*$/\1/p' "$logs/$name.err" | head -n1)
    if out=$(bash "$EDU_ROOT/scripts/check-bootlog" "$vmm" "$logs/$name.log" 2>&1); then return 0; fi
    echo "$out" | head -n 20
    fail "$name" "boot log: kernel lines at warning level or above that tests/bootlog-allow.txt does not allow on $vmm (above)"
    return 1
}
check_lab_acpi() {
    check_lab "$1" && expect "$1" '^\[ *[0-9.]+\] ACPI: RSDP 0x00000000000E0000' &&
        expect "$1" '^\[ *[0-9.]+\] PCI: Using ACPI for IRQ routing' &&
        expect "$1" '^\[ *[0-9.]+\] ACPI: PM: \(supports S0 S5\)'
}
check_poweroff() {
    ended_ok "$1" && expect "$1" '^[0-9]+ pci_edu$' &&
        expect "$1" 'vm ended after .*: guest power-off \(ACPI S5\)' && reject "$1" 'guest reset \(reboot\)' &&
        { ! grep -q nested "$logs/$1.err" || expect "$1" '^EDU-RS-L1-END vmm_status=0$'; }
}
check_acpi_off() {
    check_selftest_two "$1" && expect "$1" '"irq_mode":"intx"' &&
        expect "$1" '^\[ *[0-9.]+\] found SMP MP-table at' && reject "$1" '^\[ *[0-9.]+\] ACPI: RSDP'
}

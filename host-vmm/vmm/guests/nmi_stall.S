# A guest on two vCPUs whose vCPU 0 sends an NMI to APIC 1, which never
# got INIT/SIPI: KVM can neither deliver the NMI nor run vCPU 1, so every
# KVM_RUN of vCPU 1 returns EAGAIN at once. vCPU 0 then sleeps 2.5 s in
# hlt (local APIC timer), long enough for a 1 s watchdog to ask where the
# vCPUs are, and resets. The host test checks that the VMM
# neither logs nor burns a core for vCPU 1 meanwhile.
        .include "common.inc"
        .include "lapic.inc"

        .equ SLEEP_NS, 2500000000

        .section .text.start
        .global _start
_start:
        PUTS s_start
        call load_idt
        call lapic_enable
        mov edi, 1
        mov esi, ICR_NMI
        call send_ipi
        PUTS s_sent
        mov eax, SLEEP_NS
        call lapic_sleep
        PUTS s_woke
        jmp pass

        .section .rodata
s_start: .asciz "nmi_stall: start\n"
s_sent:  .asciz "nmi_stall: NMI sent to APIC 1\n"
s_woke:  .asciz "nmi_stall: slept 2.5 s\n"

# A guest on two vCPUs that starts vCPU 1 (INIT, start-up IPI) into a
# real-mode loop that never exits to the VMM, waits until it runs, and
# resets the machine from vCPU 0 while vCPU 1 still runs: the VMM must stop
# and join vCPU 1 before it lets go of devices and memory.
        .include "common.inc"
        .include "lapic.inc"

        .equ TRAMPOLINE, 0x1000         # start-up IPI vector 0x01
        .equ AP_FLAG, 0x1100            # set to 1 by vCPU 1
        .equ WAIT, 10000000             # bounded wait for vCPU 1

        .section .text.start
        .global _start
_start:
        PUTS s_start
        # Copy vCPU 1's real-mode code to the start-up page.
        lea rsi, [rip + ap_code]
        mov rdi, TRAMPOLINE
        mov ecx, ap_code_end - ap_code
        rep movsb
        mov dword ptr [AP_FLAG], 0
        call lapic_enable
        mov edi, 1
        mov esi, ICR_INIT
        call send_ipi
        mov edi, 1
        mov esi, ICR_STARTUP | (TRAMPOLINE >> 12)
        call send_ipi
        mov ecx, WAIT
1:      cmp dword ptr [AP_FLAG], 1
        je 2f
        pause
        dec ecx
        jnz 1b
        FAIL s_no_ap
2:      PUTS s_running
        jmp pass

        .section .rodata
# vCPU 1 starts here in real mode at 0100:0000: flag that it runs, spin.
ap_code:
        .code16
        mov ax, cs
        mov ds, ax
        mov dword ptr [AP_FLAG - TRAMPOLINE], 1
3:      jmp 3b
        .code64
ap_code_end:
s_start:   .asciz "two_cpus: start\n"
s_running: .asciz "two_cpus: vCPU 1 runs\n"
s_no_ap:   .asciz "vCPU 1 did not start"

# Spins forever without an exit after one line, so the VMM's watchdog has
# to kick the vCPU out of KVM_RUN to say where it is.
        .include "common.inc"
        .section .text.start
        .global _start
_start:
        PUTS s_start
spin:   jmp spin

        .section .rodata
s_start: .asciz "spin: start\n"

# Executes an undefined instruction with an empty IDT: #UD cannot be
# delivered, nor the #GP and #DF that follow, so the CPU shuts down (a
# triple fault). edu-vmm must exit non-zero and name the reason.
        .include "common.inc"
        .section .text.start
        .global _start
_start:
        PUTS s_hello
        ud2
        FAIL s_survived

        .section .rodata
s_hello:    .asciz "triple_fault: start\n"
s_survived: .asciz "ud2 did not fault"

# String port I/O: one KVM exit may carry every element of a string
# instruction, and the VMM must make one access per element. KVM's
# instruction emulator batches `rep insb` (one exit, count 4 here) but, as
# measured on this machine, exits once per byte of `rep outsb`; so the
# `rep insb` of the UART's line status register is what tells a VMM that
# made one access per exit (0x60 then zeros) from a correct one (0x60 four
# times). The `rep outsb` text is checked by the host test all the same.
        .include "common.inc"
        .section .text.start
        .global _start
_start:
        PUTS s_start
        cld
        lea rsi, [rip + s_rep]
        lea rcx, [rip + s_rep_end]
        sub rcx, rsi
        mov dx, COM1
        rep outsb

        # Line status (COM1 + 5), idle with an empty transmitter: 0x60.
        lea rdi, [rip + lsr]
        mov ecx, 4
        mov dx, COM1 + 5
        rep insb
        PUTS s_lsr
        mov rax, [rip + lsr]
        mov eax, eax
        HEX rax
        call putnl
        cmp dword ptr [rip + lsr], 0x60606060
        jne 1f
        jmp pass
1:      FAIL s_bad_lsr

        .section .rodata
s_start:   .asciz "string_io: start\n"
s_rep:     .ascii "string_io: rep outsb reached the serial line\n"
s_rep_end:
s_lsr:     .asciz "string_io: lsr="
s_bad_lsr: .asciz "rep insb did not read the line status four times"

        .section .data
lsr:       .quad 0

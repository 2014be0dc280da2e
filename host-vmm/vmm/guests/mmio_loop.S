# A measurement guest: reads the first edu's identification register
# 10,000 times (one MMIO exit each), checking every value, so the cost of
# an MMIO exit in the VMM can be measured (wall time, or callgrind's
# instruction count divided by the exit count the VMM logs).
        .include "common.inc"
        .include "pci.inc"

        .equ READS, 10000

        .section .text.start
        .global _start
_start:
        PUTS s_start
        call edu_enable
        test eax, eax
        jz no_edu
        mov ecx, READS
1:      mov eax, [rbx + EDU_REG_ID]
        cmp eax, 0x010000ed
        jne bad_id
        dec ecx
        jnz 1b
        PUTS s_done
        HEX READS
        call putnl
        jmp pass

no_edu: FAIL s_no_edu
bad_id: FAIL s_bad_id

        .section .rodata
s_start:  .asciz "mmio_loop: start\n"
s_done:   .asciz "mmio_loop reads="
s_no_edu: .asciz "no edu device found"
s_bad_id: .asciz "identification register changed"

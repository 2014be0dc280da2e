# Reads what the VMM handed over, the way Linux does, and prints it for the
# host test to compare with what it configured:
#   - the zero page: boot flag and "HdrS" magic, e820 map, command line
#     pointer, initramfs address and size (and a byte sum of its contents);
#   - the MP table: found where Linux scans (last KiB of base memory, then
#     the BIOS area), both checksums verified here, entries counted by
#     type, and each PCI interrupt entry printed.
        .include "common.inc"

        .equ BP_E820_ENTRIES, 0x1e8
        .equ BP_BOOT_FLAG,    0x1fe
        .equ BP_HEADER,       0x202
        .equ BP_RAMDISK_IMAGE, 0x218
        .equ BP_RAMDISK_SIZE, 0x21c
        .equ BP_CMD_LINE_PTR, 0x228
        .equ BP_E820_TABLE,   0x2d0

        .section .text.start
        .global _start
_start:
        mov r15, rsi                    # zero page
        PUTS s_start

        cmp word ptr [r15 + BP_BOOT_FLAG], 0xaa55
        jne bad_header
        cmp dword ptr [r15 + BP_HEADER], 0x53726448   # "HdrS"
        jne bad_header

        # e820: "e820 count=N" then "e820 ADDR SIZE TYPE" per entry.
        movzx r12d, byte ptr [r15 + BP_E820_ENTRIES]
        PUTS s_e820n
        HEX r12
        call putnl
        lea r13, [r15 + BP_E820_TABLE]
        xor r14d, r14d
1:      cmp r14, r12
        jae 2f
        PUTS s_e820
        HEX [r13]
        call putsp
        HEX [r13 + 8]
        call putsp
        mov eax, [r13 + 16]
        call puthex
        call putnl
        add r13, 20                     # packed boot_e820_entry
        inc r14
        jmp 1b
2:
        # Command line: "cmdline=[TEXT]".
        PUTS s_cmdline
        mov esi, [r15 + BP_CMD_LINE_PTR]
        test esi, esi
        jz bad_cmdline
        call puts
        PUTS s_close

        # Initramfs: "initrd addr=A size=S sum=X".
        mov ebx, [r15 + BP_RAMDISK_IMAGE]
        mov ecx, [r15 + BP_RAMDISK_SIZE]
        PUTS s_initrd
        HEX rbx
        PUTS s_size
        HEX rcx
        xor r8d, r8d
        test ecx, ecx
        jz 4f
3:      movzx eax, byte ptr [rbx]
        add r8, rax
        inc rbx
        dec ecx
        jnz 3b
4:      PUTS s_sum
        HEX r8
        call putnl

        # MP floating pointer: scan the last KiB of base memory, then the
        # BIOS area, on 16-byte boundaries.
        mov rdi, 0x9fc00
        mov rcx, 0xa0000
        call scan_mp
        test rdi, rdi
        jnz 5f
        mov rdi, 0xf0000
        mov rcx, 0x100000
        call scan_mp
        test rdi, rdi
        jz no_mp
5:      mov r8, rdi                     # floating pointer
        PUTS s_mpfp
        HEX r8
        call putnl
        mov rcx, 16
        call csum
        test al, al
        jnz bad_fp_sum
        mov r9d, [r8 + 4]               # configuration table
        cmp dword ptr [r9], 0x504d4350  # "PCMP"
        jne bad_table
        movzx ecx, word ptr [r9 + 4]
        mov rdi, r9
        call csum
        test al, al
        jnz bad_table_sum
        PUTS s_lapic
        mov eax, [r9 + 36]
        call puthex
        call putnl

        # Walk the entries.
        movzx r10d, word ptr [r9 + 34]
        lea rdi, [r9 + 44]
        xor r11d, r11d                  # processors
        xor r12d, r12d                  # buses
        xor r13d, r13d                  # IOAPICs
        xor r14d, r14d                  # I/O interrupts
        xor ebp, ebp                    # local interrupts
        mov bl, 0xff                    # PCI bus id, once seen
walk:   test r10, r10
        jz walked
        movzx eax, byte ptr [rdi]
        cmp al, 0
        je e_cpu
        cmp al, 1
        je e_bus
        cmp al, 2
        je e_ioapic
        cmp al, 3
        je e_int
        cmp al, 4
        je e_lint
        jmp bad_entry
e_cpu:  inc r11
        add rdi, 20
        jmp next
e_bus:  inc r12
        cmp dword ptr [rdi + 2], 0x20494350     # "PCI "
        jne 6f
        mov bl, [rdi + 1]
6:      add rdi, 8
        jmp next
e_ioapic:
        inc r13
        PUTS s_ioapic
        mov eax, [rdi + 4]
        call puthex
        call putnl
        add rdi, 8
        jmp next
e_int:  inc r14
        cmp [rdi + 4], bl
        jne 7f
        # "mp-pci dev=D pin=P gsi=G flags=F"
        PUTS s_mppci
        movzx eax, byte ptr [rdi + 5]
        shr eax, 2
        call puthex
        PUTS s_pin
        movzx eax, byte ptr [rdi + 5]
        and eax, 3
        call puthex
        PUTS s_gsi
        movzx eax, byte ptr [rdi + 7]
        call puthex
        PUTS s_flags
        movzx eax, word ptr [rdi + 2]
        call puthex
        call putnl
7:      add rdi, 8
        jmp next
e_lint: inc rbp
        add rdi, 8
next:   dec r10
        jmp walk
walked:
        # The walk must end exactly at the table's length.
        movzx ecx, word ptr [r9 + 4]
        add rcx, r9
        cmp rdi, rcx
        jne bad_length
        PUTS s_counts
        HEX r11
        PUTS s_buses
        HEX r12
        PUTS s_ioapics
        HEX r13
        PUTS s_ints
        HEX r14
        PUTS s_lints
        HEX rbp
        call putnl
        jmp pass

# scan_mp: rdi = first "_MP_" at 16-byte steps in [rdi, rcx), or 0.
scan_mp:
1:      cmp dword ptr [rdi], 0x5f504d5f         # "_MP_"
        je 2f
        add rdi, 16
        cmp rdi, rcx
        jb 1b
        xor edi, edi
2:      ret

bad_header:     FAIL s_bad_header
bad_cmdline:    FAIL s_bad_cmdline
no_mp:          FAIL s_no_mp
bad_fp_sum:     FAIL s_bad_fp_sum
bad_table:      FAIL s_bad_table
bad_table_sum:  FAIL s_bad_table_sum
bad_entry:      FAIL s_bad_entry
bad_length:     FAIL s_bad_length

        .section .rodata
s_start:        .asciz "bootinfo: start\n"
s_e820n:        .asciz "e820 count="
s_e820:         .asciz "e820 "
s_cmdline:      .asciz "cmdline=["
s_close:        .asciz "]\n"
s_initrd:       .asciz "initrd addr="
s_size:         .asciz " size="
s_sum:          .asciz " sum="
s_mpfp:         .asciz "mp floating="
s_lapic:        .asciz "mp lapic="
s_ioapic:       .asciz "mp ioapic="
s_mppci:        .asciz "mp-pci dev="
s_pin:          .asciz " pin="
s_gsi:          .asciz " gsi="
s_flags:        .asciz " flags="
s_counts:       .asciz "mp cpus="
s_buses:        .asciz " buses="
s_ioapics:      .asciz " ioapics="
s_ints:         .asciz " ints="
s_lints:        .asciz " lints="
s_bad_header:   .asciz "zero page has no boot flag or HdrS magic"
s_bad_cmdline:  .asciz "cmd_line_ptr is 0"
s_no_mp:        .asciz "no MP floating pointer found"
s_bad_fp_sum:   .asciz "MP floating pointer checksum"
s_bad_table:    .asciz "MP configuration table has no PCMP signature"
s_bad_table_sum: .asciz "MP configuration table checksum"
s_bad_entry:    .asciz "MP table entry of unknown type"
s_bad_length:   .asciz "MP entries do not end at the table length"

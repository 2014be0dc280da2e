# Finds and checks the ACPI tables the way Linux does, prints what the host
# test compares with what edu-vmm meant to describe, then powers the machine
# off the way Linux's poweroff does (ACPICA's legacy sleep): SLP_TYP from
# \_S5 into the FADT's PM1a control register, then SLP_TYP with SLP_EN.
#   - the RSDP: the zero page's acpi_rsdp_addr, and the scan of
#     0xe0000-0xfffff on 16-byte boundaries; both RSDP checksums;
#   - the XSDT and every table it lists (signature, address, length), each
#     checksum verified here;
#   - the FADT's SCI, PM1a control port, boot architecture and feature
#     flags, reset register, DSDT;
#   - the MADT's local APICs, IOAPIC, interrupt source overrides, NMIs;
#   - the first element of the DSDT's \_S5 package.
# A machine still running after the S5 write prints FAIL and resets.
        .include "common.inc"

        .equ BP_ACPI_RSDP_ADDR, 0x070
        .equ FADT_SCI_INT,      46
        .equ FADT_PM1A_CNT,     64
        .equ FADT_BOOT_ARCH,    109
        .equ FADT_FLAGS,        112
        .equ FADT_RESET_ADDR,   120     # reset_reg (116) + 4: the address
        .equ FADT_RESET_VALUE,  128
        .equ FADT_X_DSDT,       140
        .equ FADT_X_PM1A_CNT,   176     # x_pm1a_cnt_blk (172) + 4
        .equ SLP_EN,            1 << 13

        .section .text.start
        .global _start
_start:
        mov r15, rsi                    # zero page
        PUTS s_start
        PUTS s_zp
        HEX [r15 + BP_ACPI_RSDP_ADDR]
        call putnl

        # The RSDP, found by the scan.
        mov rdi, 0xe0000
        movabs rax, 0x2052545020445352  # "RSD PTR "
1:      cmp [rdi], rax
        je 2f
        add rdi, 16
        cmp rdi, 0x100000
        jb 1b
        FAIL s_no_rsdp
2:      mov r8, rdi
        PUTS s_rsdp
        HEX r8
        PUTS s_rev
        movzx eax, byte ptr [r8 + 15]
        call puthex
        call putnl
        mov rdi, r8
        mov ecx, 20
        call csum
        test al, al
        jnz bad_sum
        mov rdi, r8
        mov ecx, [r8 + 20]
        call csum
        test al, al
        jnz bad_sum

        # The XSDT and the tables it lists.
        mov r9, [r8 + 24]
        cmp dword ptr [r9], 0x54445358  # "XSDT"
        jne bad_xsdt
        mov rbx, r9
        call table
        mov r10d, [r9 + 4]
        sub r10, 36
        shr r10, 3
        lea r11, [r9 + 36]
        xor r12d, r12d                  # FADT
        xor r13d, r13d                  # MADT
3:      test r10, r10
        jz 4f
        mov rbx, [r11]
        call table
        cmp dword ptr [rbx], 0x50434146 # "FACP"
        cmove r12, rbx
        cmp dword ptr [rbx], 0x43495041 # "APIC"
        cmove r13, rbx
        add r11, 8
        dec r10
        jmp 3b
4:      test r12, r12
        jz no_fadt
        test r13, r13
        jz no_madt

        # FADT: "fadt sci=.. pm1a_cnt=.. pm1a_cnt32=.. boot_arch=.. flags=..
        # reset=.. reset_value=.. dsdt=.."
        PUTS s_fadt
        movzx eax, word ptr [r12 + FADT_SCI_INT]
        call puthex
        PUTS s_pm1a
        mov rax, [r12 + FADT_X_PM1A_CNT]
        call puthex
        PUTS s_pm1a32
        mov eax, [r12 + FADT_PM1A_CNT]
        call puthex
        PUTS s_arch
        movzx eax, word ptr [r12 + FADT_BOOT_ARCH]
        call puthex
        PUTS s_flags
        mov eax, [r12 + FADT_FLAGS]
        call puthex
        PUTS s_reset
        mov rax, [r12 + FADT_RESET_ADDR]
        call puthex
        PUTS s_reset_value
        movzx eax, byte ptr [r12 + FADT_RESET_VALUE]
        call puthex
        PUTS s_dsdt
        mov rax, [r12 + FADT_X_DSDT]
        call puthex
        call putnl

        # The DSDT: checked like the others, then \_S5: NameOp "_S5_"
        # PackageOp PkgLength NumElements, and the first element (ZeroOp,
        # OneOp or BytePrefix n).
        mov rbx, [r12 + FADT_X_DSDT]
        cmp dword ptr [rbx], 0x54445344 # "DSDT"
        jne bad_dsdt
        call table
        lea rdi, [rbx + 36]
        mov ecx, [rbx + 4]
        add rcx, rbx
        sub rcx, 8
5:      cmp rdi, rcx
        jae no_s5
        cmp byte ptr [rdi], 0x08
        jne 6f
        cmp dword ptr [rdi + 1], 0x5f35535f     # "_S5_"
        je 7f
6:      inc rdi
        jmp 5b
7:      cmp byte ptr [rdi + 5], 0x12
        jne no_s5
        movzx eax, byte ptr [rdi + 8]
        cmp byte ptr [rdi + 8], 0x0a
        jne 8f
        movzx eax, byte ptr [rdi + 9]
8:      cmp eax, 7
        ja no_s5
        mov r14d, eax                   # SLP_TYP
        PUTS s_s5
        mov eax, r14d
        call puthex
        call putnl

        # MADT: "madt lapic=.. flags=.. cpus=.. ioapics=.. isos=.. nmis=..",
        # a line per IOAPIC and per override.
        mov r9d, [r13 + 4]
        add r9, r13                     # end
        lea rdi, [r13 + 44]
        xor r10d, r10d                  # enabled local APICs
        xor r11d, r11d                  # IOAPICs
        xor ebx, ebx                    # overrides
        xor ebp, ebp                    # NMIs
9:      cmp rdi, r9
        jae 14f
        movzx eax, byte ptr [rdi]
        cmp al, 0
        jne 10f
        test byte ptr [rdi + 4], 1
        jz 13f
        inc r10
        jmp 13f
10:     cmp al, 1
        jne 11f
        inc r11
        PUTS s_ioapic
        movzx eax, byte ptr [rdi + 2]
        call puthex
        PUTS s_addr
        mov eax, [rdi + 4]
        call puthex
        PUTS s_gsibase
        mov eax, [rdi + 8]
        call puthex
        call putnl
        jmp 13f
11:     cmp al, 2
        jne 12f
        inc rbx
        PUTS s_iso
        movzx eax, byte ptr [rdi + 3]
        call puthex
        PUTS s_gsi
        mov eax, [rdi + 4]
        call puthex
        PUTS s_flags
        movzx eax, word ptr [rdi + 8]
        call puthex
        call putnl
        jmp 13f
12:     cmp al, 4
        jne bad_madt
        inc rbp
13:     movzx eax, byte ptr [rdi + 1]
        test eax, eax
        jz bad_madt
        add rdi, rax
        jmp 9b
14:     cmp rdi, r9
        jne bad_madt
        PUTS s_madt
        mov eax, [r13 + 36]
        call puthex
        PUTS s_flags
        mov eax, [r13 + 40]
        call puthex
        PUTS s_cpus
        HEX r10
        PUTS s_ioapics
        HEX r11
        PUTS s_isos
        HEX rbx
        PUTS s_nmis
        HEX rbp
        call putnl

        # Power off as ACPICA does: read PM1a control, write SLP_TYP, then
        # SLP_TYP | SLP_EN.
        PUTS s_pass
        mov rdx, [r12 + FADT_X_PM1A_CNT]
        in ax, dx
        and ax, ~(7 << 10 | SLP_EN)
        mov ecx, r14d
        shl ecx, 10
        or eax, ecx
        out dx, ax
        or eax, SLP_EN
        out dx, ax
        FAIL s_still_running

# table: print "table SIG addr=A len=L" for the table at rbx and verify its
# checksum. Clobbers rax, rcx, rdx, rsi, rdi.
table:
        PUTS s_table
        mov ecx, 4
        mov esi, [rbx]
1:      mov eax, esi
        call putc
        shr esi, 8
        dec ecx
        jnz 1b
        PUTS s_addr
        HEX rbx
        PUTS s_len
        mov eax, [rbx + 4]
        call puthex
        call putnl
        mov rdi, rbx
        mov ecx, [rbx + 4]
        call csum
        test al, al
        jnz bad_sum
        ret

bad_sum:        FAIL s_bad_sum
bad_xsdt:       FAIL s_bad_xsdt
bad_dsdt:       FAIL s_bad_dsdt
bad_madt:       FAIL s_bad_madt
no_fadt:        FAIL s_no_fadt
no_madt:        FAIL s_no_madt
no_s5:          FAIL s_no_s5

        .section .rodata
s_start:        .asciz "acpi: start\n"
s_zp:           .asciz "zeropage rsdp="
s_rsdp:         .asciz "rsdp addr="
s_rev:          .asciz " revision="
s_table:        .asciz "table "
s_addr:         .asciz " addr="
s_len:          .asciz " len="
s_fadt:         .asciz "fadt sci="
s_pm1a:         .asciz " pm1a_cnt="
s_pm1a32:       .asciz " pm1a_cnt32="
s_arch:         .asciz " boot_arch="
s_flags:        .asciz " flags="
s_reset:        .asciz " reset="
s_reset_value:  .asciz " reset_value="
s_dsdt:         .asciz " dsdt="
s_s5:           .asciz "s5 slp_typ="
s_ioapic:       .asciz "madt-ioapic id="
s_gsibase:      .asciz " gsi_base="
s_iso:          .asciz "madt-iso irq="
s_gsi:          .asciz " gsi="
s_madt:         .asciz "madt lapic="
s_cpus:         .asciz " cpus="
s_ioapics:      .asciz " ioapics="
s_isos:         .asciz " isos="
s_nmis:         .asciz " nmis="
s_no_rsdp:      .asciz "no RSDP in 0xe0000-0xfffff"
s_bad_sum:      .asciz "checksum"
s_bad_xsdt:     .asciz "the RSDP's XSDT address has no XSDT"
s_bad_dsdt:     .asciz "the FADT's DSDT address has no DSDT"
s_bad_madt:     .asciz "MADT entry of unknown type or length"
s_no_fadt:      .asciz "no FACP in the XSDT"
s_no_madt:      .asciz "no APIC in the XSDT"
s_no_s5:        .asciz "no \\_S5 package in the DSDT"
s_still_running: .asciz "still running after the S5 write"

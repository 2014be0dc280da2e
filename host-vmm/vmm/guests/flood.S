# A guest that makes the VMM fail 20,000 times in each of two ways, to
# check that the VMM's log stays bounded and the failures are counted:
#   - 20,000 MSIs that KVM cannot deliver: lowest-priority to the logical
#     broadcast address while the only local APIC is software-disabled
#     (KVM_SIGNAL_MSI then fails with EPERM), one per write of edu's
#     interrupt raise register;
#   - 20,000 console bytes, which the host test sends to /dev/full.
        .include "common.inc"
        .include "pci.inc"

        .equ APIC_BASE, 0xfee00000
        .equ APIC_SVR, 0xf0
        .equ COUNT, 20000
        # Logical destination 0xff (broadcast), destination mode logical.
        .equ MSI_ADDRESS, 0xfee00000 | (0xff << 12) | (1 << 2)
        # Delivery mode lowest priority (1 << 8), vector 0x41.
        .equ MSI_DATA, (1 << 8) | 0x41

        .section .text.start
        .global _start
_start:
        PUTS s_start
        cli
        # Local APIC software-disabled (SVR bit 8 clear).
        mov rbx, APIC_BASE
        mov dword ptr [rbx + APIC_SVR], 0xff

        call edu_enable
        test eax, eax
        jz no_edu

        # MSI capability: the first in edu's list (pointer at 0x34).
        lea edi, [r12d + 0x34]
        call pci_read32
        and eax, 0xfc
        jz no_msi
        mov r14d, eax
        lea edi, [r12d + r14d]
        call pci_read32
        cmp al, 0x05
        jne no_msi
        lea edi, [r12d + r14d + 4]
        mov esi, MSI_ADDRESS
        call pci_write32
        lea edi, [r12d + r14d + 8]
        xor esi, esi
        call pci_write32
        lea edi, [r12d + r14d + 12]
        mov esi, MSI_DATA
        call pci_write16
        lea edi, [r12d + r14d + 2]
        call pci_read16
        or eax, 1
        mov esi, eax
        call pci_write16

        # Every raise sends one message while the status is non-zero.
        mov ecx, COUNT
1:      mov dword ptr [rbx + EDU_REG_IRQ_RAISE], 1
        dec ecx
        jnz 1b
        PUTS s_raised

        mov ecx, COUNT
        mov dx, COM1
        mov al, '.'
2:      out dx, al
        dec ecx
        jnz 2b
        call putnl
        jmp pass

no_edu: FAIL s_no_edu
no_msi: FAIL s_no_msi

        .section .rodata
s_start:  .asciz "flood: start\n"
s_raised: .asciz "flood: raised\n"
s_no_edu: .asciz "no edu device found"
s_no_msi: .asciz "no MSI capability first in the list"

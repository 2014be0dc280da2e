# A hostile guest: thousands of pseudo-random port, MMIO and PCI
# configuration accesses of every size and alignment, then DMA requests
# that reach outside the device buffer and outside guest memory. The VMM
# must survive all of it (no panic, no abort), log and count the guest
# errors, and still run the guest to its end.
#
# Interrupts stay off throughout; the only ports left alone are the ones
# that reset the machine (0x60-0x64, 0xcf9) and the legacy chips below
# 0x100, and the only MMIO is the PCI window, so the guest itself survives.
        .include "common.inc"
        .include "pci.inc"

        .equ ROUNDS, 1500

        .section .text.start
        .global _start
_start:
        cli
        PUTS s_start
        mov r15, 0x2545f4914f6cdd1d     # generator state
        # Enable the first edu so its BAR decodes.
        xor ecx, ecx
        call pci_find_edu
        test eax, eax
        jz no_edu
        mov r12d, edi
        lea edi, [r12d + 0x04]
        mov esi, PCI_CMD_MEM_MASTER
        call pci_write16

        # Ports.
        mov r14d, ROUNDS
1:      call rand
        movzx edx, ax
        cmp edx, 0x100
        jb 3f
        cmp edx, 0xcf9
        je 3f
        bt eax, 18
        jc 2f
        # read of size 1, 2 or 4
        bt eax, 16
        jc 4f
        in al, dx
        jmp 3f
4:      bt eax, 17
        jc 5f
        in ax, dx
        jmp 3f
5:      in eax, dx
        jmp 3f
2:      mov rax, r15
        shr rax, 32
        bt r15d, 16
        jc 6f
        out dx, al
        jmp 3f
6:      bt r15d, 17
        jc 7f
        out dx, ax
        jmp 3f
7:      out dx, eax
3:      dec r14d
        jnz 1b

        # Configuration space of every slot, registers 0x00-0x3f (the MSI
        # capability is left alone: a random MSI could be an INIT).
        mov r14d, ROUNDS
1:      call rand
        mov edi, eax
        and edi, (31 << 11) | 0x3c
        mov rsi, r15
        shr rsi, 32
        call pci_write32
        call rand
        mov edi, eax
        and edi, (31 << 11) | 0x3f
        and edi, ~1
        call pci_read16
        dec r14d
        jnz 1b
        # Put the first edu's BAR and command back.
        lea edi, [r12d + 0x10]
        mov esi, 0xc0000000
        call pci_write32
        lea edi, [r12d + 0x04]
        mov esi, PCI_CMD_MEM_MASTER
        call pci_write16

        # MMIO in the PCI window: 2 MiB from 0xc0000000, every size,
        # any alignment, except the DMA registers (handled below).
        mov r14d, ROUNDS
1:      call rand
        mov ebx, eax
        and ebx, 0x1fffff
        mov ecx, ebx
        and ecx, 0xfffff
        cmp ecx, 0x80
        jb 2f
        cmp ecx, 0xa0
        jb 9f
2:      or ebx, 0xc0000000
        mov rcx, r15
        shr rcx, 40
        and ecx, 7
        mov rax, r15
        cmp ecx, 0
        je 10f
        cmp ecx, 1
        je 11f
        cmp ecx, 2
        je 12f
        cmp ecx, 3
        je 13f
        cmp ecx, 4
        je 14f
        cmp ecx, 5
        je 15f
        cmp ecx, 6
        je 16f
        mov rax, [rbx]
        jmp 9f
10:     mov [rbx], al
        jmp 9f
11:     mov [rbx], ax
        jmp 9f
12:     mov [rbx], eax
        jmp 9f
13:     mov [rbx], rax
        jmp 9f
14:     mov al, [rbx]
        jmp 9f
15:     mov ax, [rbx]
        jmp 9f
16:     mov eax, [rbx]
9:      dec r14d
        jnz 1b

        # DMA that must be refused: past the device buffer, outside guest
        # RAM, a huge count, a window that wraps.
        mov ebx, 0xc0000000
        call dma_idle
        mov qword ptr [rbx + EDU_REG_DMA_SRC], 0x300000
        mov qword ptr [rbx + EDU_REG_DMA_DST], EDU_DMA_BUF + 4000
        mov qword ptr [rbx + EDU_REG_DMA_CNT], 200
        mov qword ptr [rbx + EDU_REG_DMA_CMD], 1
        call dma_idle
        mov qword ptr [rbx + EDU_REG_DMA_SRC], EDU_DMA_BUF
        mov qword ptr [rbx + EDU_REG_DMA_DST], 0x0fff0000
        mov qword ptr [rbx + EDU_REG_DMA_CNT], 16
        mov qword ptr [rbx + EDU_REG_DMA_CMD], 3
        call dma_idle
        mov qword ptr [rbx + EDU_REG_DMA_SRC], 0x300000
        mov qword ptr [rbx + EDU_REG_DMA_DST], EDU_DMA_BUF
        mov qword ptr [rbx + EDU_REG_DMA_CNT], -1
        mov qword ptr [rbx + EDU_REG_DMA_CMD], 1
        call dma_idle
        mov qword ptr [rbx + EDU_REG_DMA_SRC], -16
        mov qword ptr [rbx + EDU_REG_DMA_DST], 0x300000
        mov qword ptr [rbx + EDU_REG_DMA_CNT], 32
        mov qword ptr [rbx + EDU_REG_DMA_CMD], 3
        call dma_idle

        # The UART may have been reprogrammed: 8N1, no loopback, no IRQs.
        mov dx, COM1 + 3
        mov al, 0x03
        out dx, al
        mov dx, COM1 + 1
        xor al, al
        out dx, al
        mov dx, COM1 + 4
        out dx, al
        PUTS s_done
        jmp pass

# rand: r15 = next state, rax = its high 32 bits... and low bits mixed.
rand:
        mov rax, 6364136223846793005
        imul r15, rax
        mov rax, 1442695040888963407
        add r15, rax
        mov rax, r15
        shr rax, 29
        xor eax, r15d
        ret

# dma_idle: wait for the DMA run bit to clear (bounded).
dma_idle:
        mov esi, EDU_REG_DMA_CMD
        mov ecx, 1
        call edu_wait
        cmp eax, -1
        je dma_stuck
        ret

no_edu:     FAIL s_no_edu
dma_stuck:  FAIL s_dma_stuck

        .section .rodata
s_start:    .asciz "chaos: start\n"
s_done:     .asciz "chaos: survived\n"
s_no_edu:   .asciz "no edu device found"
s_dma_stuck: .asciz "DMA never completed"

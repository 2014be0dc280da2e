# PCI enumeration, edu MMIO and DMA, for every edu on bus 0:
#   - scan bus 0 through 0xCF8/0xCFC, print each function found;
#   - for each edu: size BAR0 by writing all ones, program it at
#     0xe0000000 + n MiB (not where the VMM put it, so the bus must follow),
#     enable memory decoding and bus mastering, check the read-back;
#   - MMIO: identification, liveness (inverted), 10! with status polling;
#   - DMA: a 4 KiB pattern RAM -> device buffer, then device buffer -> a
#     second RAM buffer, compared byte for byte.
        .include "common.inc"
        .include "pci.inc"

        .equ NEW_BAR_BASE, 0xe0000000
        .equ RAM_A, 0x300000
        .equ RAM_B, 0x380000

        .section .text.start
        .global _start
_start:
        PUTS s_start
        # Scan: "pci dev=D id=VVVVDDDD class=CCCCCCRR"
        xor r12d, r12d
1:      mov edi, r12d
        call pci_read32
        cmp eax, 0xffffffff
        je 2f
        mov r13d, eax
        PUTS s_pcidev
        mov eax, r12d
        shr eax, 11
        call puthex
        PUTS s_id
        mov eax, r13d
        call puthex
        PUTS s_class
        lea edi, [r12d + 8]
        call pci_read32
        call puthex
        call putnl
2:      add r12d, 1 << 11
        cmp r12d, 32 << 11
        jb 1b

        # For each edu: r14 = index.
        xor r14d, r14d
edu_loop:
        mov ecx, r14d
        call pci_find_edu
        test eax, eax
        jz edu_done
        mov r12d, edi                   # config address of the function
        call test_edu
        inc r14d
        jmp edu_loop
edu_done:
        PUTS s_count
        HEX r14
        call putnl
        jmp pass

# test_edu: r12 = config address, r14 = index.
test_edu:
        # BAR0 sizing: write all ones, read the size mask back.
        lea edi, [r12d + 0x10]
        mov esi, 0xffffffff
        call pci_write32
        call pci_read32
        mov r13d, eax
        PUTS s_edu
        mov eax, r12d
        shr eax, 11
        call puthex
        PUTS s_mask
        HEX r13
        mov eax, r13d
        and eax, 0xfffffff0
        neg eax                         # size = ~mask + 1
        mov r15d, eax
        PUTS s_size
        HEX r15
        # Program BAR0 and read it back.
        mov esi, r14d
        shl esi, 20
        add esi, NEW_BAR_BASE
        mov ebx, esi
        lea edi, [r12d + 0x10]
        call pci_write32
        call pci_read32
        cmp eax, ebx
        jne bad_bar
        PUTS s_bar
        HEX rbx
        # Command register: memory + bus master.
        lea edi, [r12d + 0x04]
        call pci_read16
        or eax, PCI_CMD_MEM_MASTER
        mov esi, eax
        call pci_write16
        call pci_read16
        test eax, PCI_CMD_MEM_MASTER
        jz bad_cmd
        and eax, PCI_CMD_MEM_MASTER
        cmp eax, PCI_CMD_MEM_MASTER
        jne bad_cmd
        mov r13d, eax
        PUTS s_cmd
        HEX r13
        call putnl

        # MMIO: identification, liveness, factorial.
        mov eax, [rbx + EDU_REG_ID]
        mov r13d, eax
        PUTS s_mmio_id
        HEX r13
        mov dword ptr [rbx + EDU_REG_LIVENESS], 0x12345678
        mov eax, [rbx + EDU_REG_LIVENESS]
        mov r13d, eax
        PUTS s_live
        HEX r13
        mov dword ptr [rbx + EDU_REG_FACT], 10
        mov esi, EDU_REG_STATUS
        mov ecx, 1                      # "computing"
        call edu_wait
        cmp eax, -1
        je bad_fact_timeout
        mov r13d, eax
        PUTS s_fact
        mov eax, [rbx + EDU_REG_FACT]
        call puthex
        PUTS s_polls
        HEX r13
        call putnl

        # DMA source pattern: byte i = i * 13 + index.
        mov rdi, RAM_A
        xor ecx, ecx
3:      mov eax, ecx
        imul eax, eax, 13
        add eax, r14d
        mov [rdi + rcx], al
        inc ecx
        cmp ecx, 4096
        jb 3b
        # Clear the destination.
        mov rdi, RAM_B
        mov ecx, 4096
        xor eax, eax
        rep stosb
        # RAM_A -> device buffer.
        mov qword ptr [rbx + EDU_REG_DMA_SRC], RAM_A
        mov qword ptr [rbx + EDU_REG_DMA_DST], EDU_DMA_BUF
        mov qword ptr [rbx + EDU_REG_DMA_CNT], 4096
        mov qword ptr [rbx + EDU_REG_DMA_CMD], 1
        mov esi, EDU_REG_DMA_CMD
        mov ecx, 1
        call edu_wait
        cmp eax, -1
        je bad_dma_timeout
        # Device buffer -> RAM_B.
        mov qword ptr [rbx + EDU_REG_DMA_SRC], EDU_DMA_BUF
        mov qword ptr [rbx + EDU_REG_DMA_DST], RAM_B
        mov qword ptr [rbx + EDU_REG_DMA_CNT], 4096
        mov qword ptr [rbx + EDU_REG_DMA_CMD], 3
        mov esi, EDU_REG_DMA_CMD
        mov ecx, 1
        call edu_wait
        cmp eax, -1
        je bad_dma_timeout
        # Compare byte for byte; report the first difference.
        mov rsi, RAM_A
        mov rdi, RAM_B
        mov ecx, 4096
        repe cmpsb
        jne bad_dma_data
        PUTS s_dma
        ret

bad_bar:          FAIL s_bad_bar
bad_cmd:          FAIL s_bad_cmd
bad_fact_timeout: FAIL s_bad_fact
bad_dma_timeout:  FAIL s_bad_dma_timeout
bad_dma_data:     FAIL s_bad_dma_data

        .section .rodata
s_start:        .asciz "pci: start\n"
s_pcidev:       .asciz "pci dev="
s_id:           .asciz " id="
s_class:        .asciz " class="
s_edu:          .asciz "edu dev="
s_mask:         .asciz " barmask="
s_size:         .asciz " size="
s_bar:          .asciz " bar0="
s_cmd:          .asciz " cmd="
s_mmio_id:      .asciz "edu-mmio id="
s_live:         .asciz " liveness="
s_fact:         .asciz " fact10="
s_polls:        .asciz " polls="
s_dma:          .asciz "edu-dma 4096 bytes both ways ok\n"
s_count:        .asciz "pci edus="
s_bad_bar:      .asciz "BAR0 read-back differs from the programmed address"
s_bad_cmd:      .asciz "command register did not keep memory + bus master"
s_bad_fact:     .asciz "factorial never finished computing"
s_bad_dma_timeout: .asciz "DMA never finished"
s_bad_dma_data: .asciz "DMA data differs after RAM -> device -> RAM"

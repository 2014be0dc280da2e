# Entered through the PVH boot protocol (an ELF note names the 32-bit
# entry; flat protected mode, paging off, ebx = hvm_start_info), as a PVH
# vmlinux is. Prints the start_info fields (with the ACPI RSDP's address),
# the command line, the module (initramfs) with a byte sum, and the memory
# map, for the host test.
        .intel_syntax noprefix

        .section .note.Xen, "a"
        .align 4
        .long 4                         # name size
        .long 4                         # descriptor size
        .long 18                        # XEN_ELFNOTE_PHYS32_ENTRY
        .asciz "Xen"
        .long pvh_start

        .code32
        .equ COM1, 0x3f8

        .section .text.start
        .global pvh_start
pvh_start:
        mov esp, offset stack_top       # PVH gives no stack
        mov ebp, ebx                    # hvm_start_info
        mov esi, offset s_start
        call puts
        cmp dword ptr [ebp], 0x336ec578
        jne bad_magic
        mov esi, offset s_version
        call puts
        mov eax, [ebp + 4]
        call puthex
        mov esi, offset s_modules
        call puts
        mov eax, [ebp + 12]
        call puthex
        mov esi, offset s_entries
        call puts
        mov eax, [ebp + 48]
        call puthex
        mov esi, offset s_rsdp
        call puts
        mov eax, [ebp + 32]             # rsdp_paddr (low half)
        call puthex
        call putnl

        # Command line.
        mov esi, offset s_cmdline
        call puts
        mov esi, [ebp + 24]
        test esi, esi
        jz bad_cmdline
        call puts
        mov esi, offset s_close
        call puts

        # First module: address, size, byte sum.
        cmp dword ptr [ebp + 12], 0
        je 3f
        mov edi, [ebp + 16]
        mov ebx, [edi]                  # paddr (low half)
        mov ecx, [edi + 8]              # size (low half)
        mov esi, offset s_module
        call puts
        mov eax, ebx
        call puthex
        mov esi, offset s_size
        call puts
        mov eax, ecx
        call puthex
        xor edx, edx
        test ecx, ecx
        jz 2f
1:      movzx eax, byte ptr [ebx]
        add edx, eax
        inc ebx
        dec ecx
        jnz 1b
2:      push edx
        mov esi, offset s_sum
        call puts
        pop eax
        call puthex
        call putnl
3:
        # Memory map: 24-byte entries (addr, size, type, reserved).
        mov edi, [ebp + 40]
        mov ecx, [ebp + 48]
4:      test ecx, ecx
        jz 5f
        mov esi, offset s_e820
        call puts
        mov eax, [edi]
        call puthex
        call putsp
        mov eax, [edi + 8]
        call puthex
        call putsp
        mov eax, [edi + 16]
        call puthex
        call putnl
        add edi, 24
        dec ecx
        jmp 4b
5:      mov esi, offset s_pass
        call puts
reset:  mov al, 0xfe
        out 0x64, al
6:      cli
        hlt
        jmp 6b

bad_magic:
        mov esi, offset s_bad_magic
        jmp fail
bad_cmdline:
        mov esi, offset s_bad_cmdline
fail:   push esi
        mov esi, offset s_fail
        call puts
        pop esi
        call puts
        call putnl
        jmp reset

# puts: print [esi] up to NUL. Clobbers eax, esi.
puts:   push edx
        mov dx, COM1
1:      lodsb
        test al, al
        jz 2f
        out dx, al
        jmp 1b
2:      pop edx
        ret

putsp:  push edx
        mov dx, COM1
        mov al, ' '
        out dx, al
        pop edx
        ret

putnl:  push edx
        mov dx, COM1
        mov al, '\n'
        out dx, al
        pop edx
        ret

# puthex: eax as 0x and 8 hex digits. Clobbers eax.
puthex: push ebx
        push ecx
        push edx
        mov ebx, eax
        mov dx, COM1
        mov al, '0'
        out dx, al
        mov al, 'x'
        out dx, al
        mov ecx, 8
1:      rol ebx, 4
        mov al, bl
        and al, 0xf
        cmp al, 10
        jb 2f
        add al, 'a' - 10 - '0'
2:      add al, '0'
        out dx, al
        dec ecx
        jnz 1b
        pop edx
        pop ecx
        pop ebx
        ret

        .section .data
        .align 16
stack:  .skip 1024
stack_top:

        .section .rodata
s_start:    .asciz "pvh: start\n"
s_version:  .asciz "pvh version="
s_modules:  .asciz " modules="
s_entries:  .asciz " memmap="
s_rsdp:     .asciz " rsdp="
s_cmdline:  .asciz "cmdline=["
s_close:    .asciz "]\n"
s_module:   .asciz "module addr="
s_size:     .asciz " size="
s_sum:      .asciz " sum="
s_e820:     .asciz "pvh-e820 "
s_pass:     .asciz "PASS\n"
s_fail:     .asciz "FAIL: "
s_bad_magic: .asciz "start_info magic is not 0x336ec578"
s_bad_cmdline: .asciz "cmdline_paddr is 0"

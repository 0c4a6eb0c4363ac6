//! The PVH entry: from 32-bit protected mode to 64-bit Rust in the higher half.
//!
//! QEMU (and Xen, Firecracker, cloud-hypervisor) start a PVH kernel at the 32-bit physical address
//! named by the `XEN_ELFNOTE_PHYS32_ENTRY` note, with paging off and EBX pointing at
//! `hvm_start_info`. This is the same way QEMU boots Linux with `-kernel`, so no boot loader is
//! needed. The trampoline builds nothing at run time: its page tables are assembled statically and
//! map the first GiB three times (identity for the switch, the direct map at `PHYS_OFFSET`, and the
//! kernel image at `KERNEL_VIRT_OFFSET`), which is all the Rust code needs until `mm::paging`
//! replaces them.

use crate::arch::x86_64::stack::BOOT_STACK;

core::arch::global_asm!(
    r#"
    .section .note.Xen, "a"
    .p2align 2
    .long 4            /* namesz */
    .long 8            /* descsz */
    .long 18           /* XEN_ELFNOTE_PHYS32_ENTRY */
    .asciz "Xen"
    .p2align 2
    .quad pvh_start32

    .section .boot.text, "ax"
    .code32
    .global pvh_start32
pvh_start32:
    cli
    cld
    mov dword ptr [boot_start_info], ebx
    mov esp, offset boot_stack32_top

    /* Long mode needs CPUID leaf 0x80000001 bit 29. */
    mov eax, 0x80000000
    cpuid
    cmp eax, 0x80000001
    jb 2f
    mov eax, 0x80000001
    cpuid
    test edx, 0x20000000
    jz 2f

    mov eax, offset boot_pml4
    mov cr3, eax
    mov eax, cr4
    or eax, 0x20               /* PAE */
    mov cr4, eax
    mov ecx, 0xC0000080        /* EFER */
    rdmsr
    or eax, 0x900              /* LME | NXE */
    wrmsr
    mov eax, cr0
    or eax, 0x80010001         /* PG | WP | PE */
    mov cr0, eax

    lgdt [boot_gdt_pointer]
    mov eax, 0x08
    push eax
    mov eax, offset boot_long_mode
    push eax
    retf

2:  /* No long mode: say so on COM1 and stop. */
    mov esi, offset boot_no_long_mode_msg
3:  lodsb
    test al, al
    jz 4f
    mov dx, 0x3f8
    out dx, al
    jmp 3b
4:  hlt
    jmp 4b

    .code64
boot_long_mode:
    mov ax, 0x10
    mov ds, ax
    mov es, ax
    mov ss, ax
    xor eax, eax
    mov fs, ax
    mov gs, ax
    movabs rax, offset kernel_entry64
    jmp rax

    .section .boot.data, "aw"
    .p2align 12
boot_pml4:
    .quad boot_pdpt_low + 0x3
    .fill 255, 8, 0
    .quad boot_pdpt_low + 0x3     /* 0xffff800000000000: direct map */
    .fill 254, 8, 0
    .quad boot_pdpt_high + 0x3    /* 0xffffff8000000000 */
boot_pdpt_low:
    .quad boot_pd + 0x3
    .fill 511, 8, 0
boot_pdpt_high:
    .fill 510, 8, 0
    .quad boot_pd + 0x3           /* 0xffffffff80000000: kernel image */
    .quad 0
boot_pd:
    .set boot_pd_index, 0
    .rept 512
    .quad (boot_pd_index * 0x200000) + 0x83
    .set boot_pd_index, boot_pd_index + 1
    .endr
boot_gdt:
    .quad 0
    .quad 0x00af9a000000ffff      /* 0x08: 64-bit code */
    .quad 0x00cf92000000ffff      /* 0x10: data */
boot_gdt_end:
boot_gdt_pointer:
    .word boot_gdt_end - boot_gdt - 1
    .long boot_gdt
    .global boot_start_info
boot_start_info:
    .long 0
boot_no_long_mode_msg:
    .asciz "Cadenza: this CPU has no long mode\r\n"
    .p2align 4
boot_stack32:
    .fill 64, 1, 0
boot_stack32_top:

    .section .text.entry, "ax"
    .global kernel_entry64
    .type kernel_entry64, @function
kernel_entry64:
    /* The outermost frame: tell debuggers there is no caller to unwind into. */
    .cfi_sections .debug_frame
    .cfi_startproc
    .cfi_undefined rip
    lea rsp, [rip + {stack} + {stack_size}]
    xor ebp, ebp
    mov esi, offset boot_start_info
    mov edi, dword ptr [rsi]
    call {main}
5:  hlt
    jmp 5b
    .cfi_endproc
    .size kernel_entry64, . - kernel_entry64
"#,
    stack = sym BOOT_STACK,
    stack_size = const crate::arch::x86_64::stack::BOOT_STACK_OFFSET_TOP,
    main = sym crate::kernel_main,
);

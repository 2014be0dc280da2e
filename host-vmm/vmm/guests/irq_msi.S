# Interrupts as MSI; see irq.inc.
        .equ MODE_INTX, 0
        .include "irq.inc"

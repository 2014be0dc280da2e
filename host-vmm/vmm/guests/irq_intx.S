# Interrupts as INTx through the IOAPIC with the MP table routing; see irq.inc.
        .equ MODE_INTX, 1
        .include "irq.inc"

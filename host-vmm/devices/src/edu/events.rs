//! What edu does besides answering register accesses, for whoever watches
//! (edu-vmm's trace recorder): a factorial finishing, a DMA transfer
//! starting and completing, the interrupt status changing.
//!
//! An [`EduObserver`] is called with the device's state lock held, from
//! the vCPU thread that wrote a register or from the worker that finished
//! the work: it must return quickly and must not call back into the device.

use std::time::Duration;

use super::state::DmaRegs;

/// How a DMA transfer ended (`docs/edu-device.md`, "DMA").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DmaOutcome {
    /// The bytes were copied.
    Copied,
    /// Outside the buffer or guest memory: nothing copied.
    OutOfRange,
    /// Bus mastering was off: zeros into the buffer, nothing to RAM.
    Blocked,
    /// Guest memory refused the copy after the range check passed.
    Failed,
}

/// One thing edu did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EduEvent {
    /// A factorial finished: `n!` mod 2^32 is in the factorial register.
    FactorialDone {
        /// The operand.
        n: u32,
        /// The result.
        result: u32,
    },
    /// A DMA command started a transfer that completes after `delay`.
    DmaStarted {
        /// The DMA registers, command included.
        regs: DmaRegs,
        /// The configured delay.
        delay: Duration,
    },
    /// A transfer completed.
    DmaDone {
        /// The DMA registers as the transfer used them.
        regs: DmaRegs,
        /// The guest-memory address after the DMA mask.
        ram: u64,
        /// What happened to the bytes.
        outcome: DmaOutcome,
        /// Time from the command to the completion.
        waited: Duration,
    },
    /// The interrupt status register changed.
    IrqStatus {
        /// Before.
        old: u32,
        /// After.
        new: u32,
    },
}

/// Receives an edu's events; see the module documentation.
pub trait EduObserver: Send + Sync {
    /// One event, as it happens.
    fn event(&self, e: EduEvent);
}

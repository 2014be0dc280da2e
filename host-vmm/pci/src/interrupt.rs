//! Interrupt delivery from a device to whatever hosts it.
//!
//! A device holds an `Arc<dyn InterruptSink>` and calls it when its INTx
//! level changes or when it sends an MSI. The VMM implements the trait with
//! KVM (an IOAPIC line for INTx, `KVM_SIGNAL_MSI` or an irqfd for MSI); tests
//! use [`RecordingInterrupts`], which records every call, and
//! [`FailingInterrupts`], which fails some.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use thiserror::Error;

/// An INTx pin, as encoded in the interrupt-pin register (1 = INTA).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IntxPin {
    /// INTA#.
    A,
    /// INTB#.
    B,
    /// INTC#.
    C,
    /// INTD#.
    D,
}

impl IntxPin {
    /// The pin for an interrupt-pin register value (0 = none).
    pub fn from_register(v: u8) -> Option<Self> {
        match v {
            1 => Some(IntxPin::A),
            2 => Some(IntxPin::B),
            3 => Some(IntxPin::C),
            4 => Some(IntxPin::D),
            _ => None,
        }
    }

    /// The interrupt-pin register value (1 = INTA).
    pub fn register_value(self) -> u8 {
        match self {
            IntxPin::A => 1,
            IntxPin::B => 2,
            IntxPin::C => 3,
            IntxPin::D => 4,
        }
    }
}

/// One MSI message: a 32-bit write of `data` to `address`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MsiMessage {
    /// Message address (0xFEExxxxx on x86).
    pub address: u64,
    /// Message data (vector and delivery mode on x86).
    pub data: u32,
}

/// Why an interrupt could not be delivered.
#[derive(Debug, Error)]
pub enum InterruptError {
    /// The host call that delivers the interrupt failed.
    #[error("interrupt delivery failed: {0}")]
    Delivery(#[from] std::io::Error),
    /// Nothing is wired to this pin or message.
    #[error("no interrupt route for {0}")]
    NoRoute(&'static str),
}

/// Where a device's interrupts go.
///
/// Implementations must not call back into the device: a device may call
/// these methods while holding its own state lock.
pub trait InterruptSink: Send + Sync {
    /// Drives the function's INTx `pin` high (level-triggered).
    fn assert_intx(&self, pin: IntxPin) -> Result<(), InterruptError>;
    /// Drives the function's INTx `pin` low.
    fn deassert_intx(&self, pin: IntxPin) -> Result<(), InterruptError>;
    /// Sends one MSI message.
    fn send_msi(&self, msg: MsiMessage) -> Result<(), InterruptError>;
}

/// One call recorded by [`RecordingInterrupts`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InterruptEvent {
    /// `assert_intx(pin)`.
    IntxAssert(IntxPin),
    /// `deassert_intx(pin)`.
    IntxDeassert(IntxPin),
    /// `send_msi(msg)`.
    Msi(MsiMessage),
}

#[derive(Debug, Default)]
struct Recording {
    events: Vec<InterruptEvent>,
    dropped: u64,
    intx_level: [bool; 4],
    msi_count: u64,
    intx_assert_count: u64,
}

/// An [`InterruptSink`] that records calls, for tests.
///
/// It keeps at most [`RecordingInterrupts::MAX_EVENTS`] events (later ones
/// are counted in [`dropped`](RecordingInterrupts::dropped) so a guest that
/// raises forever cannot grow it without bound), and tracks the current
/// level of each pin and the number of MSIs.
#[derive(Debug, Default)]
pub struct RecordingInterrupts {
    inner: Mutex<Recording>,
}

impl RecordingInterrupts {
    /// Events kept before further ones are only counted.
    pub const MAX_EVENTS: usize = 4096;

    /// An empty recording.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Recording> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn push(&self, ev: InterruptEvent) {
        let mut r = self.lock();
        match ev {
            InterruptEvent::IntxAssert(p) => {
                r.intx_level[usize::from(p.register_value() - 1)] = true;
                r.intx_assert_count += 1;
            }
            InterruptEvent::IntxDeassert(p) => {
                r.intx_level[usize::from(p.register_value() - 1)] = false;
            }
            InterruptEvent::Msi(_) => r.msi_count += 1,
        }
        if r.events.len() < Self::MAX_EVENTS {
            r.events.push(ev);
        } else {
            r.dropped += 1;
        }
    }

    /// A copy of the recorded events, oldest first.
    pub fn events(&self) -> Vec<InterruptEvent> {
        self.lock().events.clone()
    }

    /// Takes the recorded events, leaving none (levels and counts stay).
    pub fn take_events(&self) -> Vec<InterruptEvent> {
        std::mem::take(&mut self.lock().events)
    }

    /// The recorded MSI messages, oldest first.
    pub fn msis(&self) -> Vec<MsiMessage> {
        self.lock()
            .events
            .iter()
            .filter_map(|e| match e {
                InterruptEvent::Msi(m) => Some(*m),
                _ => None,
            })
            .collect()
    }

    /// Current level of `pin` as last driven.
    pub fn intx_level(&self, pin: IntxPin) -> bool {
        self.lock().intx_level[usize::from(pin.register_value() - 1)]
    }

    /// Number of MSIs sent so far.
    pub fn msi_count(&self) -> u64 {
        self.lock().msi_count
    }

    /// Number of INTx assert calls so far.
    pub fn intx_assert_count(&self) -> u64 {
        self.lock().intx_assert_count
    }

    /// Events not kept because the recording was full.
    pub fn dropped(&self) -> u64 {
        self.lock().dropped
    }
}

impl InterruptSink for RecordingInterrupts {
    fn assert_intx(&self, pin: IntxPin) -> Result<(), InterruptError> {
        self.push(InterruptEvent::IntxAssert(pin));
        Ok(())
    }

    fn deassert_intx(&self, pin: IntxPin) -> Result<(), InterruptError> {
        self.push(InterruptEvent::IntxDeassert(pin));
        Ok(())
    }

    fn send_msi(&self, msg: MsiMessage) -> Result<(), InterruptError> {
        self.push(InterruptEvent::Msi(msg));
        Ok(())
    }
}

/// An [`InterruptSink`] that fails some calls, for tests and fuzz targets
/// of the error paths: call `n` (counting every call from 0) fails when bit
/// `n % 64` of the pattern is set. It counts calls and failures, so a test
/// can check that the device counted every failure it was given.
#[derive(Debug, Default)]
pub struct FailingInterrupts {
    pattern: u64,
    calls: AtomicU64,
    failures: AtomicU64,
}

impl FailingInterrupts {
    /// A sink failing the calls `pattern` selects (`u64::MAX`: all).
    pub fn new(pattern: u64) -> Self {
        FailingInterrupts {
            pattern,
            ..Self::default()
        }
    }

    /// Calls so far.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::SeqCst)
    }

    /// Calls that failed so far.
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::SeqCst)
    }

    fn call(&self) -> Result<(), InterruptError> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst);
        if self.pattern >> (n % 64) & 1 == 0 {
            return Ok(());
        }
        self.failures.fetch_add(1, Ordering::SeqCst);
        Err(InterruptError::Delivery(std::io::Error::other(
            "failure injected by FailingInterrupts",
        )))
    }
}

impl InterruptSink for FailingInterrupts {
    fn assert_intx(&self, _pin: IntxPin) -> Result<(), InterruptError> {
        self.call()
    }

    fn deassert_intx(&self, _pin: IntxPin) -> Result<(), InterruptError> {
        self.call()
    }

    fn send_msi(&self, _msg: MsiMessage) -> Result<(), InterruptError> {
        self.call()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pin_register_round_trip() {
        for v in 1..=4 {
            assert_eq!(IntxPin::from_register(v).unwrap().register_value(), v);
        }
        assert_eq!(IntxPin::from_register(0), None);
        assert_eq!(IntxPin::from_register(5), None);
    }

    #[test]
    fn recording_tracks_levels_and_msis() {
        let r = RecordingInterrupts::new();
        r.assert_intx(IntxPin::A).unwrap();
        assert!(r.intx_level(IntxPin::A));
        assert!(!r.intx_level(IntxPin::B));
        r.deassert_intx(IntxPin::A).unwrap();
        assert!(!r.intx_level(IntxPin::A));
        let m = MsiMessage {
            address: 0xfee0_0000,
            data: 0x41,
        };
        r.send_msi(m).unwrap();
        assert_eq!(r.msis(), vec![m]);
        assert_eq!(r.msi_count(), 1);
        assert_eq!(r.intx_assert_count(), 1);
        assert_eq!(r.take_events().len(), 3);
        assert!(r.events().is_empty());
        assert_eq!(r.msi_count(), 1);
    }

    #[test]
    fn recording_is_bounded() {
        let r = RecordingInterrupts::new();
        let m = MsiMessage {
            address: 0,
            data: 0,
        };
        for _ in 0..RecordingInterrupts::MAX_EVENTS + 10 {
            r.send_msi(m).unwrap();
        }
        assert_eq!(r.events().len(), RecordingInterrupts::MAX_EVENTS);
        assert_eq!(r.dropped(), 10);
        assert_eq!(r.msi_count(), RecordingInterrupts::MAX_EVENTS as u64 + 10);
    }

    #[test]
    fn failing_sink_fails_the_selected_calls() {
        let f = FailingInterrupts::new(0b101);
        let m = MsiMessage {
            address: 0,
            data: 0,
        };
        assert!(f.send_msi(m).is_err());
        assert!(f.assert_intx(IntxPin::A).is_ok());
        assert!(f.deassert_intx(IntxPin::A).is_err());
        for _ in 3..64 {
            assert!(f.send_msi(m).is_ok());
        }
        assert!(f.send_msi(m).is_err(), "call 64 is call 0 again");
        assert_eq!((f.calls(), f.failures()), (65, 3));
        assert!(FailingInterrupts::new(u64::MAX).send_msi(m).is_err());
    }
}

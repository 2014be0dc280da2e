//! Legacy port devices: the 8250 UART at 0x3f8 (IRQ 4) and the i8042
//! keyboard controller's reset line at 0x64, both from vm-superio.
//!
//! The UART raises its interrupt through an eventfd registered as an irqfd
//! for GSI 4, so the guest's interrupt arrives without a VMM round trip.
//! A write of 0xfe to port 0x64 (Linux's `reboot=k`) signals the reset
//! eventfd, which ends the VM with status 0.
//!
//! The i8042 has nothing but that reset line: no command byte, no
//! keyboard. The ACPI tables say there is no 8042 ([`crate::acpi`]), so
//! Linux with ACPI never probes it. A kernel without ACPI (or with
//! `acpi=off`) probes the ports; its status register reads
//! [`I8042_STATUS_NO_CONTROLLER`]: an output buffer that never drains,
//! which Linux's i8042 driver takes as "No controller found" (as it takes
//! the all-ones of a board without one), and an input buffer that is
//! always empty, so the reset command is written at once. (vm-superio's
//! status of 0 made Linux think a controller was there and then fail with
//! `i8042: Can't read CTR while initializing i8042`.)

use std::io::Write;
use std::sync::Mutex;

use edu_devices::guest_log::GuestEvents;
use vm_superio::{I8042Device, Serial, Trigger};
use vmm_sys_util::eventfd::EventFd;

/// First port of COM1.
pub const SERIAL_PORT: u16 = 0x3f8;
/// Ports decoded by the UART.
pub const SERIAL_PORT_LEN: u16 = 8;
/// GSI of COM1.
pub const SERIAL_IRQ: u32 = 4;
/// The i8042 data port; the command port is at +4 (0x64).
pub const I8042_PORT: u16 = 0x60;
/// Ports decoded by the i8042 (0x60..=0x64).
pub const I8042_PORT_LEN: u16 = 5;
/// Offset of the status register (port 0x64, read).
const I8042_STATUS: u8 = 4;
/// Status: output buffer full (bit 0) forever, input buffer empty (bit 1
/// clear): how the reset-only i8042 reads to a driver that probes it.
pub const I8042_STATUS_NO_CONTROLLER: u8 = 0x01;

/// Errors creating legacy devices.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// eventfd creation failed.
    #[error("creating an eventfd: {0}")]
    EventFd(#[source] std::io::Error),
    /// Cloning an eventfd failed.
    #[error("duplicating an eventfd: {0}")]
    Clone(#[source] std::io::Error),
}

/// An eventfd as a vm-superio interrupt or reset trigger.
#[derive(Debug)]
pub struct EventFdTrigger(pub EventFd);

impl Trigger for EventFdTrigger {
    type E = std::io::Error;

    fn trigger(&self) -> std::io::Result<()> {
        self.0.write(1)
    }
}

impl EventFdTrigger {
    /// A new non-blocking eventfd.
    pub fn new() -> Result<Self, Error> {
        EventFd::new(libc::EFD_NONBLOCK)
            .map(Self)
            .map_err(Error::EventFd)
    }

    /// A duplicate of the eventfd (same counter).
    pub fn try_clone(&self) -> Result<EventFd, Error> {
        self.0.try_clone().map_err(Error::Clone)
    }
}

/// Where the console goes.
pub type ConsoleOut = Box<dyn Write + Send>;

/// The legacy devices on the port bus.
pub struct Legacy {
    serial: Mutex<Serial<EventFdTrigger, vm_superio::serial::NoEvents, ConsoleOut>>,
    i8042: Mutex<I8042Device<EventFdTrigger>>,
    /// Console bytes the guest wrote that could not be written out.
    pub console_lost: GuestEvents,
    /// Reset requests whose eventfd could not be signalled.
    pub reset_errors: GuestEvents,
}

impl Legacy {
    /// Creates the UART writing to `out` and the i8042.
    pub fn new(serial_irq: EventFdTrigger, reset: EventFdTrigger, out: ConsoleOut) -> Self {
        Legacy {
            serial: Mutex::new(Serial::new(serial_irq, out)),
            i8042: Mutex::new(I8042Device::new(reset)),
            console_lost: GuestEvents::new("console byte lost"),
            reset_errors: GuestEvents::new("reset error"),
        }
    }

    /// Handles a port read if one of ours decodes it.
    pub fn pio_read(&self, port: u16, data: &mut [u8]) -> bool {
        if let Some(off) = offset(port, SERIAL_PORT, SERIAL_PORT_LEN) {
            let v = lock(&self.serial).read(off);
            data.fill(0);
            if let Some(b) = data.first_mut() {
                *b = v;
            }
            return true;
        }
        if let Some(off) = offset(port, I8042_PORT, I8042_PORT_LEN) {
            let v = if off == I8042_STATUS {
                I8042_STATUS_NO_CONTROLLER
            } else {
                lock(&self.i8042).read(off)
            };
            data.fill(0);
            if let Some(b) = data.first_mut() {
                *b = v;
            }
            return true;
        }
        false
    }

    /// Handles a port write if one of ours decodes it.
    pub fn pio_write(&self, port: u16, data: &[u8]) -> bool {
        let Some(&v) = data.first() else {
            return false;
        };
        if let Some(off) = offset(port, SERIAL_PORT, SERIAL_PORT_LEN) {
            if let Err(e) = lock(&self.serial).write(off, v) {
                self.console_lost
                    .record(log::Level::Warn, format_args!("serial write failed: {e}"));
            }
            return true;
        }
        if let Some(off) = offset(port, I8042_PORT, I8042_PORT_LEN) {
            if let Err(e) = lock(&self.i8042).write(off, v) {
                self.reset_errors.record(
                    log::Level::Warn,
                    format_args!("i8042 reset trigger failed: {e:?}"),
                );
            }
            return true;
        }
        false
    }

    /// Feeds host input to the UART's receive FIFO; returns bytes taken.
    pub fn serial_input(&self, bytes: &[u8]) -> usize {
        lock(&self.serial).enqueue_raw_bytes(bytes).unwrap_or(0)
    }

    /// Flushes the console.
    pub fn flush(&self) {
        let _ = lock(&self.serial).writer_mut().flush();
    }
}

/// Locks a device even if a previous holder panicked: device state stays
/// usable, and a VMM thread must never panic because another did.
pub fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn offset(port: u16, base: u16, len: u16) -> Option<u8> {
    port.checked_sub(base).filter(|o| *o < len).map(|o| o as u8)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex as StdMutex};

    #[derive(Clone, Default)]
    struct Sink(Arc<StdMutex<Vec<u8>>>);
    impl Write for Sink {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn legacy() -> (Legacy, Sink, EventFd) {
        let sink = Sink::default();
        let reset = EventFdTrigger::new().unwrap();
        let r = reset.try_clone().unwrap();
        let l = Legacy::new(
            EventFdTrigger::new().unwrap(),
            reset,
            Box::new(sink.clone()),
        );
        (l, sink, r)
    }

    #[test]
    fn serial_output_reaches_the_writer() {
        let (l, sink, _) = legacy();
        for b in b"hi\n" {
            assert!(l.pio_write(SERIAL_PORT, &[*b]));
        }
        assert_eq!(&*sink.0.lock().unwrap(), b"hi\n");
        // Line status: transmitter empty.
        let mut d = [0u8];
        assert!(l.pio_read(SERIAL_PORT + 5, &mut d));
        assert_ne!(d[0] & 0x20, 0);
    }

    /// A writer that always fails, as /dev/full does.
    struct Full;
    impl Write for Full {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::Error::from_raw_os_error(libc::ENOSPC))
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn console_bytes_that_cannot_be_written_are_counted() {
        let l = Legacy::new(
            EventFdTrigger::new().unwrap(),
            EventFdTrigger::new().unwrap(),
            Box::new(Full),
        );
        for _ in 0..1000 {
            assert!(l.pio_write(SERIAL_PORT, b"x"));
        }
        assert_eq!(l.console_lost.count(), 1000);
        assert_eq!(l.reset_errors.count(), 0);
    }

    #[test]
    fn serial_input_is_readable() {
        let (l, _, _) = legacy();
        assert_eq!(l.serial_input(b"x"), 1);
        let mut d = [0u8];
        assert!(l.pio_read(SERIAL_PORT, &mut d));
        assert_eq!(d[0], b'x');
    }

    #[test]
    fn i8042_reads_as_absent_to_a_probe_and_takes_the_reset_at_once() {
        let (l, _, reset) = legacy();
        let mut status = [0u8];
        // Linux's i8042_flush(): a status with OBF set after 16 data
        // reads is "No controller found".
        for _ in 0..17 {
            assert!(l.pio_read(0x64, &mut status));
            assert_ne!(status[0] & 0x01, 0, "output buffer full");
            let mut data = [0xffu8];
            assert!(l.pio_read(0x60, &mut data));
        }
        // Linux's kb_wait() before the reset command: input buffer empty.
        assert_eq!(status[0] & 0x02, 0, "input buffer empty");
        assert!(l.pio_write(0x64, &[0xfe]));
        assert_eq!(reset.read().unwrap(), 1);
    }

    #[test]
    fn i8042_reset_signals() {
        let (l, _, reset) = legacy();
        assert!(reset.read().is_err(), "no reset yet");
        assert!(l.pio_write(0x64, &[0xfe]));
        assert_eq!(reset.read().unwrap(), 1);
    }

    #[test]
    fn other_ports_are_not_ours() {
        let (l, _, _) = legacy();
        let mut d = [0u8; 1];
        assert!(!l.pio_read(0x3f7, &mut d));
        assert!(!l.pio_read(0x400, &mut d));
        assert!(!l.pio_write(0x80, &[1]));
        assert!(!l.pio_write(SERIAL_PORT, &[]));
    }
}

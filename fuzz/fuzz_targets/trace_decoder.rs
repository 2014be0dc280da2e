//! Fuzzes the I/O trace's decoder and event writer (`edu_trace`), which
//! edu-vmm's writer thread runs on every exit a guest causes: any sequence
//! of port and MMIO accesses, of any size (0 to 16 bytes, as a QEMU log
//! may claim) at any address, biased towards the addresses the decoder
//! names (configuration ports, UART, edu's BAR0, APICs, HPET). Invariants:
//! no panic; every access gets a device, a register and words; every event
//! is one JSON line that reads back as the same event.

#![no_main]

use edu_trace::decode::{Access, Bdf, Decoder, Space};
use edu_trace::event::read_events;
use edu_trace::recorder::{Caps, Raw, Record, TraceWriter};
use libfuzzer_sys::fuzz_target;

/// Bytes per access: flags, 2 address bytes, size, 8 value bytes.
const CHUNK: usize = 12;
/// Bases the low address bits are added to (flags bits 2..5 pick one).
const BASES: [(Space, u64); 10] = [
    (Space::Port, 0xcf8),
    (Space::Port, 0x3f8),
    (Space::Port, 0x2f8),
    (Space::Port, 0x60),
    (Space::Port, 0x70),
    (Space::Port, 0x400),
    (Space::Mmio, 0xc000_0000),
    (Space::Mmio, 0xfee0_0000),
    (Space::Mmio, 0xfec0_0000),
    (Space::Mmio, 0xfed0_0000),
];

fn access(c: &[u8]) -> Access {
    let (space, base) = BASES[usize::from(c[0] >> 2) % BASES.len()];
    let low = u64::from(u16::from_le_bytes([c[1], c[2]]));
    let mut v = [0u8; 8];
    v.copy_from_slice(&c[4..12]);
    Access {
        space,
        write: c[0] & 1 != 0,
        addr: if c[0] & 2 != 0 {
            low
        } else {
            base + (low & 0xfff)
        },
        size: c[3] % 17,
        value: u64::from_le_bytes(v),
    }
}

fuzz_target!(|data: &[u8]| {
    let accesses: Vec<Access> = data.chunks_exact(CHUNK).map(access).collect();
    let mut d = Decoder::new();
    d.add_edu(Bdf::new(0, 1, 0), 0xc000_0000);
    for a in &accesses {
        let n = d.decode(a);
        assert!(!n.text.is_empty() && !n.dev.is_empty() && !n.reg.is_empty());
    }
    let mut w = TraceWriter::new(Vec::new(), Decoder::new(), "edu-vmm", Caps::default())
        .expect("writing to memory");
    let records: Vec<Record> = accesses
        .iter()
        .enumerate()
        .map(|(i, a)| Record {
            t_ns: i as u64,
            dur_ns: 1,
            raw: Raw::Access {
                vcpu: 0,
                access: *a,
            },
        })
        .collect();
    let events: Vec<_> = records.iter().map(|r| w.event(r)).collect();
    for e in &events {
        let back = read_events(e.to_line().as_bytes()).expect("one JSON line");
        assert_eq!(back, vec![e.clone()]);
    }
});

//! The decoder sees what a guest does (edu-vmm's writer thread decodes
//! every exit) and whatever a QEMU log says: any sequence of accesses, of
//! any size at any address, is named without a panic, and every event it
//! becomes is one well-formed JSON line.

use edu_trace::decode::{Access, Bdf, Decoder, Space};
use edu_trace::event::read_events;
use edu_trace::recorder::{Caps, Raw, Record, TraceWriter};
use proptest::prelude::*;

/// Addresses where the decoder has something to say, and around them.
fn addr() -> impl Strategy<Value = (Space, u64)> {
    prop_oneof![
        (0xcf8u64..0xd00).prop_map(|a| (Space::Port, a)),
        (0x3f8u64..0x400).prop_map(|a| (Space::Port, a)),
        prop_oneof![
            Just(0x20u64),
            Just(0x40),
            Just(0x60),
            Just(0x64),
            Just(0x70),
            Just(0x71),
            Just(0x80),
            Just(0x402),
            Just(0x608)
        ]
        .prop_map(|a| (Space::Port, a)),
        any::<u16>().prop_map(|a| (Space::Port, u64::from(a))),
        (0xc000_0000u64..0xc010_0100).prop_map(|a| (Space::Mmio, a)),
        (0xfec0_0000u64..0xfec0_0020).prop_map(|a| (Space::Mmio, a)),
        (0xfee0_0000u64..0xfee0_2000).prop_map(|a| (Space::Mmio, a)),
        (0xfed0_0000u64..0xfed0_0400).prop_map(|a| (Space::Mmio, a)),
        any::<u64>().prop_map(|a| (Space::Mmio, a)),
    ]
}

fn access() -> impl Strategy<Value = Access> {
    (addr(), any::<bool>(), 0u8..=16, any::<u64>()).prop_map(
        |((space, addr), write, size, value)| Access {
            space,
            write,
            addr,
            size,
            value,
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_accesses_are_named_and_written(accesses in prop::collection::vec(access(), 1..120)) {
        let mut d = Decoder::new();
        d.add_edu(Bdf::new(0, 1, 0), 0xc000_0000);
        for a in &accesses {
            let n = d.decode(a);
            prop_assert!(!n.text.is_empty() && !n.dev.is_empty());
        }
        let mut w = TraceWriter::new(Vec::new(), Decoder::new(), "edu-vmm", Caps::default()).unwrap();
        let records: Vec<Record> = accesses
            .iter()
            .enumerate()
            .map(|(i, a)| Record { t_ns: i as u64, dur_ns: 1, raw: Raw::Access { vcpu: 0, access: *a } })
            .collect();
        w.write_batch(records).unwrap();
        let ev = read_events(w.close(&edu_trace::recorder::Recorder::new(Caps::default())).unwrap().as_slice()).unwrap();
        prop_assert_eq!(ev.len(), accesses.len() + 2);
    }
}

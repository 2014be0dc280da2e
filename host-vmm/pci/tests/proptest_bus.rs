//! Property tests for the configuration ports and the configuration space.

use edu_pci::config::{ConfigSpace, Type0Header, BAR0};
use edu_pci::{BarKind, BarSpec, PciBus};
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum PortOp {
    Read(u64, usize),
    Write(u64, Vec<u8>),
}

fn port_op() -> impl Strategy<Value = PortOp> {
    prop_oneof![
        (0u64..10, 0usize..=5).prop_map(|(p, n)| PortOp::Read(p, n)),
        (0u64..10, proptest::collection::vec(any::<u8>(), 0..=5))
            .prop_map(|(p, d)| PortOp::Write(p, d)),
    ]
}

proptest! {
    /// No port sequence panics, and whatever the guest wrote, function 0 of
    /// the host bridge still identifies itself and absent slots read all ones.
    #[test]
    fn config_ports_never_panic(ops in proptest::collection::vec(port_op(), 1..128)) {
        let bus = PciBus::new();
        for op in ops {
            match op {
                PortOp::Read(p, n) => {
                    let mut b = vec![0u8; n];
                    bus.config_io_read(p, &mut b);
                }
                PortOp::Write(p, d) => bus.config_io_write(p, &d),
            }
        }
        bus.config_io_write(0, &0x8000_0000u32.to_le_bytes());
        let mut b = [0u8; 4];
        bus.config_io_read(4, &mut b);
        prop_assert_eq!(u32::from_le_bytes(b), 0x0008_1b36);
        bus.config_io_write(0, &0x8000_0800u32.to_le_bytes());
        bus.config_io_read(4, &mut b);
        prop_assert_eq!(b, [0xff; 4]);
    }

    /// Any CONFIG_ADDRESS that selects something other than 00:00.0 reads
    /// all ones at every width.
    #[test]
    fn absent_functions_read_all_ones(addr in any::<u32>(), port in 4u64..8, w in prop::sample::select(vec![1usize, 2, 4])) {
        let bus = PciBus::new();
        let (a, _) = edu_pci::PciAddress::from_config_address(addr);
        prop_assume!(a.bus != 0 || a.device != 0 || a.function != 0 || addr & 0x8000_0000 == 0);
        bus.config_io_write(0, &addr.to_le_bytes());
        let mut b = vec![0u8; w];
        bus.config_io_read(port, &mut b);
        prop_assert!(b.iter().all(|&x| x == 0xff));
    }

    /// A 32-bit memory BAR of any size reads back the written address with
    /// the bits below its size cleared.
    #[test]
    fn bar_write_masks_to_size(log2 in 4u32..=31, v in any::<u32>()) {
        let mut cs = ConfigSpace::new(&Type0Header {
            vendor_id: 1, device_id: 2, revision_id: 0, class_code: 0,
            subsystem_vendor_id: 0, subsystem_id: 0, interrupt_pin: 0,
        });
        let size = 1u64 << log2;
        cs.add_bar(0, BarSpec { kind: BarKind::Memory32 { prefetchable: false }, size }).unwrap();
        cs.write(BAR0, &v.to_le_bytes());
        prop_assert_eq!(u64::from(cs.read_u32(BAR0)), u64::from(v) & !(size - 1) & 0xffff_fff0);
    }

    /// Arbitrary configuration writes at any offset never panic and never
    /// change the identification registers.
    #[test]
    fn config_writes_keep_ids(writes in proptest::collection::vec((any::<u16>(), proptest::collection::vec(any::<u8>(), 0..8)), 0..64)) {
        let mut cs = ConfigSpace::new(&Type0Header {
            vendor_id: 0x1234, device_id: 0x11e8, revision_id: 0x10, class_code: 0xff00,
            subsystem_vendor_id: 0x1af4, subsystem_id: 0x1100, interrupt_pin: 1,
        });
        for (off, data) in writes {
            cs.write(usize::from(off), &data);
        }
        prop_assert_eq!(cs.read_u32(0), 0x11e8_1234);
        prop_assert_eq!(cs.read_u32(0x2c), 0x1100_1af4);
    }
}

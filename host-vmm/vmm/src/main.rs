//! The `edu-vmm` binary: parse the command line, build the VM, run it, and
//! exit with the guest's status (0 for a guest reboot or power-off, 1 for a
//! triple fault, a KVM error or a setup error, 2 for a usage error).

use clap::Parser;
use edu_vmm::{logger, Cli, Config, Vmm};

fn main() {
    let cli = Cli::parse();
    logger::init(cli.log_level.into());
    let status = match Config::try_from(&cli)
        .map_err(|e| e.to_string())
        .and_then(|c| Vmm::try_from(c).map_err(|e| e.to_string()))
        .and_then(|v| v.run().map_err(|e| e.to_string()))
    {
        Ok(exit) => {
            if exit.status() != 0 {
                log::error!("{exit}");
            }
            exit.status()
        }
        Err(e) => {
            log::error!("{e}");
            1
        }
    };
    std::process::exit(status);
}

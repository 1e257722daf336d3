//! `pieyes`: the daemon, or one of its subcommands (`pieyes ctl …`, `record`, `selftest`).

#![deny(unsafe_code)]

use pieyes::config::{self, Invocation};

fn main() {
    pieyes::log::init_from_env();
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(code) = pieyes::cli::run(&args) {
        std::process::exit(code);
    }
    let code = match config::parse_args(&args) {
        Ok(Invocation::Help) => {
            print!("{}", config::USAGE);
            0
        }
        Ok(Invocation::Version) => {
            println!("pieyes {}", env!("CARGO_PKG_VERSION"));
            0
        }
        Ok(Invocation::ListCameras(cfg)) => match pieyes::backends::list_cameras(&cfg) {
            Ok(text) => {
                print!("{text}");
                0
            }
            Err(e) => {
                eprintln!("pieyes: {e}");
                1
            }
        },
        Ok(Invocation::Run(cfg)) => match pieyes::daemon::Daemon::new(*cfg).and_then(|d| d.run()) {
            Ok(()) => 0,
            Err(e) => {
                pieyes::error!("{e}");
                1
            }
        },
        Err(e) => {
            eprintln!("pieyes: {e}\n(see pieyes --help)");
            2
        }
    };
    std::process::exit(code);
}

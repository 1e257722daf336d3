//! `pieyes`: the daemon, or `pieyes ctl …` to talk to one.

use pieyes::config::{self, Invocation};

fn main() {
    pieyes::log::init_from_env();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let code = match config::parse_args(&args) {
        Ok(Invocation::Help) => {
            print!("{}", config::USAGE);
            0
        }
        Ok(Invocation::Version) => {
            println!("pieyes {}", env!("CARGO_PKG_VERSION"));
            0
        }
        Ok(Invocation::Ctl { control, words }) => pieyes::control::ctl::run(&control, &words),
        Ok(Invocation::Record(args)) => pieyes::record::run(&args),
        Ok(Invocation::Selftest(args)) => pieyes::selftest::run(&args),
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

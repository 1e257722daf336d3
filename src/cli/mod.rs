//! The subcommands beside the daemon. Each is a short-lived client of a running daemon (`ctl`,
//! `record`) or of the kernel (`selftest`), parses what follows its name and returns an exit
//! status; `ws_client` is the blocking WebSocket client `record`, the tests and the benchmarks
//! share. Nothing here runs inside the daemon.

pub mod ctl;
pub mod record;
pub mod selftest;
pub mod tap_client;
pub mod ws_client;

/// Run the subcommand `args` names; its exit status. `None`: not a subcommand (the daemon).
pub fn run(args: &[String]) -> Option<i32> {
    let (name, rest) = args.split_first()?;
    Some(match name.as_str() {
        "ctl" => ctl::main(rest),
        "record" => record::main(rest),
        "selftest" => selftest::main(rest),
        _ => return None,
    })
}

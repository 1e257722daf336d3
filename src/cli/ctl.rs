//! `pieyes ctl [--control PATH] <command…>`: send one command to a running daemon's Unix socket
//! and print the reply. Exit status 0 for `ok`, 1 for `err` (or no daemon), 2 for a usage
//! mistake. `watch` prints the reply, then every event line until interrupted or the daemon goes.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Duration;

pub const USAGE: &str = "\
usage: pieyes ctl [--control PATH] <command…>

Sends one command of the control language to a running pieyes and prints its reply line.
Exit status 0 for `ok …`, 1 for `err …` or no daemon, 2 for a usage mistake.
`pieyes ctl help` lists the commands; `pieyes ctl watch` prints its reply, then every
`event …` line as it happens, until interrupted (Ctrl-C) or the daemon stops.

  --control PATH   the daemon's control socket; may come anywhere in the line (default:
                   $PIEYES_CONTROL, else $XDG_RUNTIME_DIR/pieyes.sock, else /tmp/pieyes.sock)
  -h, --help       this text (nothing is sent)
";

/// What `pieyes ctl …` asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Ctl {
    Help,
    Send { control: PathBuf, words: Vec<String> },
}

/// Parse what follows `ctl`. `default_control` is the socket without `--control` (from
/// `PIEYES_CONTROL` or the runtime directory: `config::default_control_path`).
pub fn parse(args: &[String], default_control: PathBuf) -> Result<Ctl, String> {
    let mut control = None;
    let mut words = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        // The control language has no word starting with `-` that is not a number: these are ours.
        match a.as_str() {
            "-h" | "--help" => return Ok(Ctl::Help),
            "--control" => control = Some(PathBuf::from(it.next().ok_or("--control needs a path")?)),
            _ => match a.strip_prefix("--control=") {
                Some(p) => control = Some(PathBuf::from(p)),
                None => words.push(a.clone()),
            },
        }
    }
    if control.as_ref().is_some_and(|p| p.as_os_str().is_empty()) {
        return Err("--control needs a path".into());
    }
    if words.is_empty() {
        return Err("which command? (pieyes ctl help lists them; pieyes ctl --help explains ctl)".into());
    }
    Ok(Ctl::Send { control: control.unwrap_or(default_control), words })
}

/// `pieyes ctl …`; the exit status.
pub fn main(args: &[String]) -> i32 {
    match parse(args, crate::config::default_control_path()) {
        Ok(Ctl::Help) => {
            print!("{USAGE}");
            0
        }
        Ok(Ctl::Send { control, words }) => send(&control, &words),
        Err(e) => {
            eprintln!("pieyes ctl: {e}\n(see pieyes ctl --help)");
            2
        }
    }
}

fn send(socket: &std::path::Path, words: &[String]) -> i32 {
    let line = words.join(" ");
    let mut stream = match UnixStream::connect(socket) {
        Ok(s) => s,
        Err(e) => {
            eprintln!(
                "pieyes ctl: cannot connect to {}: {e} (is the daemon running? --control PATH or PIEYES_CONTROL)",
                socket.display()
            );
            return 1;
        }
    };
    let streaming = words.first().map(String::as_str) == Some("watch");
    if !streaming {
        let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    }
    if let Err(e) = stream.write_all(format!("{line}\n").as_bytes()) {
        eprintln!("pieyes ctl: write: {e}");
        return 1;
    }
    let mut reader = BufReader::new(stream);
    let mut out = std::io::stdout().lock();
    let mut status = None;
    loop {
        let mut reply = String::new();
        match reader.read_line(&mut reply) {
            Ok(0) => break,
            Ok(_) => {
                status.get_or_insert(if reply.starts_with("ok") { 0 } else { 1 });
                // Each line goes out as it comes (a `watch` is read live, often through a pipe);
                // a reader that went away (`| head`) ends us quietly, as SIGPIPE would.
                if out.write_all(reply.as_bytes()).and_then(|_| out.flush()).is_err() {
                    break;
                }
                if !streaming {
                    break;
                }
            }
            Err(e) => {
                eprintln!("pieyes ctl: read: {e}");
                return 1;
            }
        }
    }
    if status.is_none() {
        eprintln!("pieyes ctl: the daemon closed the connection without a reply");
    }
    status.unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_line(s: &str) -> Result<Ctl, String> {
        let args: Vec<String> = s.split_whitespace().map(String::from).collect();
        parse(&args, PathBuf::from("/run/default.sock"))
    }

    fn send(control: &str, words: &str) -> Ctl {
        Ctl::Send { control: control.into(), words: words.split_whitespace().map(String::from).collect() }
    }

    #[test]
    fn control_may_come_anywhere_and_the_default_is_given() {
        assert_eq!(parse_line("crop 0 1 2 3 4"), Ok(send("/run/default.sock", "crop 0 1 2 3 4")));
        assert_eq!(parse_line("--control /x.sock crop 0 1 2 3 4"), Ok(send("/x.sock", "crop 0 1 2 3 4")));
        assert_eq!(parse_line("look both -0.5 0 --control /x.sock"), Ok(send("/x.sock", "look both -0.5 0")));
        assert_eq!(parse_line("zoom --control=/y.sock 0 2"), Ok(send("/y.sock", "zoom 0 2")));
        assert_eq!(parse_line("--control /a --control /b status"), Ok(send("/b", "status")), "the last one wins");
    }

    #[test]
    fn help_is_ours_and_mistakes_are_errors() {
        assert_eq!(parse_line("--help"), Ok(Ctl::Help));
        assert_eq!(parse_line("-h"), Ok(Ctl::Help));
        assert_eq!(parse_line("--control /x.sock look --help"), Ok(Ctl::Help));
        assert!(parse_line("").is_err());
        assert!(parse_line("--control /x.sock").is_err(), "no command");
        assert!(parse_line("status --control").is_err(), "no path");
        assert!(parse_line("status --control=").is_err(), "empty path");
    }
}

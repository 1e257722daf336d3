//! `pieyes ctl <command…>`: send one command to a running daemon's Unix socket and print the
//! reply. Exit status 0 for `ok`, 1 for `err` (or no daemon). `watch` prints events until EOF.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

pub fn run(socket: &Path, words: &[String]) -> i32 {
    let line = words.join(" ");
    let mut stream = match UnixStream::connect(socket) {
        Ok(s) => s,
        Err(e) => {
            eprintln!(
                "pieyes ctl: cannot connect to {}: {e} (is the daemon running? --control PATH)",
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
    let mut first = true;
    let mut status = 1;
    loop {
        let mut reply = String::new();
        match reader.read_line(&mut reply) {
            Ok(0) => break,
            Ok(_) => {
                print!("{reply}");
                if first {
                    status = if reply.starts_with("ok") { 0 } else { 1 };
                    first = false;
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
    status
}

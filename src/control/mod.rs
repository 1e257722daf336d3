//! The control language: one command per line, one reply line each (`ok …` / `err <code>
//! <message>`), the same over the Unix socket and the viewer's `/control` WebSocket. (The
//! `pieyes ctl` client is `cli::ctl`.)

pub mod command;
pub mod event;
pub mod line;
pub mod reply;
pub mod saver;
pub mod socket;
pub mod state_file;
pub mod text;

//! WebSocket (RFC 6455), server side: the opening handshake, the frame codec and a connection
//! state machine that assembles messages and answers control frames. No I/O in here.

pub mod connection;
pub mod frame;
pub mod handshake;

//! pieyes: two low-latency H.264 eyes for a robot.
//!
//! Data flows camera → encoder → fan-out → WebSocket viewers, all driven by one `poll()` loop
//! (`daemon`); control flows the other way from the Unix socket or the `/control` WebSocket.
//!
//! - Sans-IO, over bytes, values and time: `http`, `ws`, `session` (one state machine per
//!   connection role), `control` (the language: commands, replies, events, the state file),
//!   `controller` (the commanded state and per-frame policy), `access`, `eyes` (crop maths,
//!   movement plans), `stream` (wire header, fan-out), `json`, `metrics`, `health`.
//! - The fds: `daemon` (the loop: sockets, listeners, dispatch), `backends` (choosing and
//!   opening cameras and encoders), `transport` (plain or TLS), `pipeline` (each eye's
//!   camera and encoder buffers), `camera` and `encoder` backends (threads, V4L2, libcamera),
//!   `control::socket` and `control::saver` (the control socket's file, state writes on a
//!   worker), `sys` (the kernel corner: every syscall wrapper with `unsafe`).

#![deny(unsafe_code)]

#[macro_use]
pub mod log;

pub mod access;
pub mod backends;
pub mod calibrate;
pub mod camera;
pub mod cli;
pub mod config;
pub mod control;
pub mod controller;
pub mod daemon;
pub mod encoder;
pub mod event_loop;
pub mod eyes;
pub mod health;
pub mod histogram;
pub mod http;
pub mod inject;
pub mod json;
pub mod limits;
pub mod metrics;
pub mod pipeline;
pub mod session;
pub mod stats;
pub mod stream;
pub mod tap;
pub mod transport;
// The kernel corner: the one module allowed `unsafe` (besides the FFI sites in
// `camera::libcamera` and `encoder::software`), each block with a `// SAFETY:` line.
#[allow(unsafe_code)]
pub mod sys;
pub mod ws;

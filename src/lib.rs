//! pieyes: two low-latency H.264 eyes for a robot.
//!
//! Data flows camera → encoder → fan-out → WebSocket viewers, all driven by one `poll()` loop
//! (`daemon`); control flows the other way from the Unix socket or the `/control` WebSocket.
//! Every protocol (HTTP, WebSocket, the control language, the wire header, fan-out policy) is a
//! sans-IO state machine over bytes and values; only `daemon` and `sys` touch file descriptors.

#![deny(unsafe_code)]

#[macro_use]
pub mod log;

pub mod camera;
pub mod cli;
pub mod config;
pub mod control;
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
pub mod stream;
// The kernel corner: the one module allowed `unsafe` (besides the FFI sites in
// `camera::libcamera` and `encoder::software`), each block with a `// SAFETY:` line.
#[allow(unsafe_code)]
pub mod sys;
pub mod ws;

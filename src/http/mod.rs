//! HTTP/1.1, just what a camera daemon serves: GET/HEAD of the embedded viewer, upgrades to
//! WebSocket, a few JSON/text endpoints. Parsing and responses are pure functions over bytes.

pub mod request;
pub mod response;
pub mod static_files;

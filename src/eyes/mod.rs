//! Where each eye looks: which crop each frame of each eye gets.

pub mod geometry;
pub mod timeline;

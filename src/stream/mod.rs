//! From access units to viewers: the wire format of a video message, the per-connection
//! outbox of shared buffers, and the fan-out policy for slow viewers.

pub mod fanout;
pub mod keyframe;
pub mod outbox;
pub mod wire;

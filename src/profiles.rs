//! Profile records of the event log (placeholder filled in below).
pub const TYPE_NAME: &str = "line-adapter/profile";

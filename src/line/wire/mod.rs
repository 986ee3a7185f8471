//! LINE's JSON on the wire, both ways: webhook bodies into `pb::Event`
//! ([`events`]) and our messages into LINE's message objects
//! ([`messages`]).

pub mod events;
pub mod messages;

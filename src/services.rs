//! The parts of the service that exist once the store is open. Both
//! listeners start before that (so probes answer at once) and reach these
//! through [`Ready`], answering "unavailable" until it is set.

use std::sync::{Arc, OnceLock};

use crate::{
    channels::Channels, fanout::Fanout, fault::StoreFault, inbound::Inbound,
    lookup_cache::LookupCache, media::Media, metrics::Metrics, outbox::Outbox, space::SpaceWatch,
    store::Store, time::Clock, tokens::Tokens, uploads::Uploads,
};

#[derive(Clone)]
pub struct Services {
    /// The time, for the handlers that date or age something (reply
    /// tokens, acks, uploads, webhook secrets); the parts below hold the
    /// same clock.
    pub clock: Clock,
    pub store: Arc<dyn Store>,
    pub channels: Channels,
    /// Channel access tokens, obtained and renewed as each channel's mode says.
    pub tokens: Tokens,
    pub inbound: Inbound,
    pub fanout: Fanout,
    pub outbox: Outbox,
    pub media: Media,
    /// Agents' uploads, served to LINE at `/media/{token}`.
    pub uploads: Uploads,
    pub metrics: Metrics,
    /// Cached profile and group lookups, and the LINE client they use.
    pub lookups: LookupCache,
    /// The data dir's low-space watermark: below it, writes are refused.
    pub space: SpaceWatch,
    /// Store write failures: readiness and liveness follow them.
    pub fault: StoreFault,
}

/// Set once, at start-up, when the store has opened.
#[derive(Clone, Default)]
pub struct Ready(Arc<OnceLock<Services>>);

impl Ready {
    pub fn set(&self, services: Services) {
        // A second call would mean two stores; keep the first.
        let _ = self.0.set(services);
    }

    pub fn get(&self) -> Option<&Services> {
        self.0.get()
    }
}

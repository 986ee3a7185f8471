//! `line-adapter check`: the first thing to run when agents see nothing.
//! It validates the settings (done by the caller), opens the store, tests
//! that LINE's API hosts are reachable (through the proxy, as the service
//! would reach them) and, for each channel, that its token works
//! (`GET /v2/bot/info`). One line per check; exit status 1 on any failure.
//!
//! When a running service holds the store, the channel checks go through
//! its gRPC API instead (ListChannels, GetBotInfo), with the first
//! configured API key that may administer.

use std::{io::Write, time::Instant};

use tonic::{Request, metadata::MetadataValue, transport::Endpoint};

use crate::{
    app::{self, AppError},
    channels::Channels,
    metrics::Metrics,
    proto::v1::{self as pb, channel_admin_client::ChannelAdminClient},
    settings::Settings,
    store::{ChannelRecord, StoreError, TokenMode},
    time::Clock,
    tokens::Tokens,
};

/// Runs every check, writing the report to `out`; returns how many failed.
pub async fn run(settings: &Settings, out: &mut impl Write) -> usize {
    let mut failures = 0;
    let mut line = |text: String| {
        let _ = writeln!(out, "{text}");
    };
    line("settings: ok".into());

    let client = match app::line_client(settings) {
        Ok(client) => client,
        Err(reason) => {
            line(format!("LINE client: FAILED: {reason}"));
            return 1;
        }
    };
    let via = if settings.line_proxy.is_some() {
        " via line_proxy"
    } else {
        ""
    };
    for (what, base) in [
        ("LINE API", &settings.line_api_base),
        ("LINE data API", &settings.line_data_api_base),
    ] {
        let started = Instant::now();
        // Any HTTP answer (401 without a token) proves the host is reached.
        match client.probe(base).await {
            Ok(status) => line(format!(
                "{what} {base}: reachable{via} (HTTP {status} in {} ms)",
                started.elapsed().as_millis()
            )),
            Err(err) => {
                failures += 1;
                line(format!("{what} {base}: FAILED{via}: {err}"));
            }
        }
    }

    let clock = Clock::system();
    match app::open_offline(settings, &clock).await {
        Ok(None) => line(format!(
            "store {}: none yet (the service has not run with this data dir); no channels to check",
            settings.data_dir.display()
        )),
        Ok(Some((store, cipher))) => {
            let channels = Channels::new(store.clone(), cipher, clock.clone());
            let tokens = app::tokens(
                settings,
                channels.clone(),
                store.clone(),
                client,
                Metrics::default(),
                clock,
            );
            failures += check_offline(&channels, &tokens, &mut line).await;
            if let Err(err) = store.close().await {
                line(format!("store: FAILED to close: {err}"));
                failures += 1;
            }
        }
        Err(AppError::Store(StoreError::Locked { path })) => {
            line(format!(
                "store {path}: in use by the running service; checking channels through its gRPC API"
            ));
            failures += check_online(settings, &mut line).await;
        }
        Err(err) => {
            failures += 1;
            line(format!("store: FAILED: {err}"));
        }
    }
    line(match failures {
        0 => "result: all checks passed".into(),
        1 => "result: 1 check FAILED".into(),
        n => format!("result: {n} checks FAILED"),
    });
    failures
}

async fn check_offline(
    channels: &Channels,
    tokens: &Tokens,
    line: &mut impl FnMut(String),
) -> usize {
    let mut failures = 0;
    let mut after: Option<String> = None;
    let mut count = 0;
    loop {
        let page = match channels.list(after.as_deref(), 100).await {
            Ok(page) => page,
            Err(err) => {
                line(format!("store: FAILED to list channels: {err}"));
                return failures + 1;
            }
        };
        let Some(last) = page.last() else { break };
        after = Some(last.id.clone());
        for channel in page {
            count += 1;
            let name = describe(&channel);
            match bot_info(tokens, &channel).await {
                Ok(bot) => line(format!("channel {name}: ok, {bot}")),
                Err(reason) => {
                    failures += 1;
                    line(format!("channel {name}: FAILED: {reason}"));
                }
            }
        }
    }
    if count == 0 {
        line("channels: none registered".into());
    }
    failures
}

fn describe(channel: &ChannelRecord) -> String {
    let mode = match channel.token_mode {
        TokenMode::LongLived => "long-lived token",
        TokenMode::ShortLivedV2 => "short-lived v2 token",
        TokenMode::V21Jwt => "v2.1 token",
        TokenMode::StatelessV3 => "stateless v3 token",
    };
    format!(
        "{} \"{}\" (LINE channel {}, {mode})",
        channel.id, channel.display_name, channel.line_channel_id
    )
}

/// The bot's name with the channel's token, through the same door to LINE
/// (and the same renewal after a 401) as every other call.
async fn bot_info(tokens: &Tokens, channel: &ChannelRecord) -> Result<String, String> {
    let bot = tokens
        .line(channel)
        .bot_info()
        .await
        .map_err(|err| err.to_string())?;
    Ok(format!("bot \"{}\" {}", bot.display_name, bot.basic_id))
}

/// Channel checks through the running service's gRPC API.
async fn check_online(settings: &Settings, line: &mut impl FnMut(String)) -> usize {
    let mut addr = settings.grpc_addr;
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let endpoint = match Endpoint::from_shared(format!("http://{addr}")) {
        Ok(endpoint) => endpoint,
        Err(err) => {
            line(format!("gRPC {addr}: FAILED: {err}"));
            return 1;
        }
    };
    let channel = match endpoint.connect().await {
        Ok(channel) => channel,
        Err(err) => {
            line(format!("gRPC {addr}: FAILED: cannot connect: {err}"));
            return 1;
        }
    };
    let key = settings
        .api_keys
        .iter()
        .find(|key| key.scopes.admin)
        .map(|key| key.key.clone());
    let authorize = |mut request: Request<()>| -> Result<Request<()>, tonic::Status> {
        if let Some(key) = &key
            && let Ok(value) = MetadataValue::try_from(format!("Bearer {}", key.expose()))
        {
            request.metadata_mut().insert("authorization", value);
        }
        Ok(request)
    };
    let mut admin = ChannelAdminClient::with_interceptor(channel, authorize);
    let mut failures = 0;
    let mut page_token = String::new();
    let mut count = 0;
    loop {
        let page = match admin
            .list_channels(pb::ListChannelsRequest {
                page_size: 100,
                page_token: page_token.clone(),
            })
            .await
        {
            Ok(page) => page.into_inner(),
            Err(status) => {
                line(format!(
                    "gRPC {addr}: FAILED to list channels: {}",
                    status.message()
                ));
                return failures + 1;
            }
        };
        for channel in page.channels {
            count += 1;
            let name = format!(
                "{} \"{}\" (LINE channel {})",
                channel.id, channel.display_name, channel.line_channel_id
            );
            match admin
                .get_bot_info(pb::GetBotInfoRequest {
                    channel_id: channel.id.clone(),
                })
                .await
            {
                Ok(bot) => {
                    let bot = bot.into_inner();
                    line(format!(
                        "channel {name}: ok, bot \"{}\" {}",
                        bot.display_name, bot.basic_id
                    ));
                }
                Err(status) => {
                    failures += 1;
                    line(format!("channel {name}: FAILED: {}", status.message()));
                }
            }
        }
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    if count == 0 {
        line("channels: none registered".into());
    }
    failures
}

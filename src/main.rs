//! The `line-adapter` command.

use std::{path::PathBuf, process::ExitCode};

use clap::{Args, Parser, Subcommand};
use line_adapter::{
    app::{self, Listeners},
    deliveries::{self, DeliveriesOptions},
    settings::{Layer, Settings, whole_number},
    shutdown,
    tail::{self, TailError, TailOptions},
    telemetry,
};

/// sysexits EX_USAGE: the configuration is wrong.
const EXIT_BAD_CONFIG: u8 = 64;
/// sysexits EX_DATAERR: the store in the data dir is damaged or foreign.
const EXIT_BAD_DATA: u8 = 65;

const SERVE_HELP: &str = "\
Every setting is also a LINE_ADAPTER_* environment variable (the flag's name
in upper case with underscores, e.g. LINE_ADAPTER_PUBLIC_BASE_URL) and a key
of the --config TOML file. Flags beat the environment, which beats the file,
which beats the built-in defaults. An unknown LINE_ADAPTER_* variable or file
key stops start-up (exit 64), as does any bad value.

Not flags (environment or file only, because command lines are visible to
other users or a deployment sets them once):
  LINE_ADAPTER_API_KEYS       comma-separated API keys callers must present
                              (key or key:scope+scope); or --api-keys-file
  LINE_ADAPTER_MASTER_KEY     32-byte key (64 hex or base64) sealing secrets at
                              rest; without it, master.key in the data dir
  LINE_ADAPTER_MASTER_KEY_PREVIOUS  the key being replaced, while rotating
  LINE_ADAPTER_STORE          sled (default) or nats, with LINE_ADAPTER_NATS_URL,
                              _NATS_CREDS_FILE, _NATS_TLS_CA_FILE, _NATS_PREFIX,
                              _NATS_REPLICAS

Logging: RUST_LOG (e.g. info, debug, line_adapter=debug), --log-format.
Exit codes: 0 stopped cleanly, 64 bad settings or flags, 65 a damaged or
foreign store in the data dir, 1 other failures.";

#[derive(Debug, Parser)]
#[command(
    name = "line-adapter",
    version,
    about = "LINE Messaging API channel adapter for Weiyu"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the service: gRPC (default 127.0.0.1:50051) and HTTP webhooks
    /// (default 0.0.0.0:8080).
    #[command(after_help = SERVE_HELP)]
    Serve(Box<ServeArgs>),
    /// Print inbound events as JSON lines (a client of Messaging.Subscribe).
    Tail(TailArgs),
    /// Print a channel's deliveries as a table, newest first: what the
    /// outbox holds, what is stuck or failed, with the last error (a client
    /// of Messaging.ListDeliveries).
    Deliveries(DeliveriesArgs),
    /// Check the settings, the store, LINE's reachability (through the
    /// proxy) and every channel's token; exit 1 on any failure. Takes the
    /// same configuration as `serve`.
    Check(Box<ServeArgs>),
    /// Exit 0 when the local service is ready (`GET /readyz` answers 200),
    /// else 1: a container HEALTHCHECK for images without curl.
    Healthcheck(HealthcheckArgs),
}

#[derive(Debug, Args)]
struct HealthcheckArgs {
    /// The readiness URL [default: http://127.0.0.1:<port of
    /// LINE_ADAPTER_HTTP_ADDR, else 8080>/readyz].
    #[arg(long, value_name = "URL")]
    url: Option<String>,
}

/// How an operator command reaches the service.
#[derive(Debug, Args)]
struct ServiceArgs {
    /// gRPC address of the service: host:port (plaintext) or
    /// http(s)://host:port.
    #[arg(long, default_value = "127.0.0.1:50051", value_name = "ADDR")]
    addr: String,
    /// API key, when the server requires one: one of its
    /// LINE_ADAPTER_API_KEYS with the scope the command needs (subscribe
    /// for tail, send for deliveries).
    #[arg(
        long,
        env = "LINE_ADAPTER_API_KEY",
        hide_env_values = true,
        value_name = "KEY"
    )]
    api_key: Option<String>,
}

#[derive(Debug, Args)]
struct DeliveriesArgs {
    #[command(flatten)]
    service: ServiceArgs,
    /// Our channel id.
    #[arg(long = "channel", value_name = "CHANNEL_ID")]
    channel: String,
    /// Only this state: queued, sending, accepted, delivered, failed, unknown
    /// (repeatable).
    #[arg(long = "state", value_name = "STATE")]
    states: Vec<String>,
    /// Only this chat: a user, group or room id.
    #[arg(long, value_name = "ID")]
    conversation: Option<String>,
    /// Most rows printed.
    #[arg(long, default_value = "50", value_name = "COUNT", value_parser = whole_number, allow_hyphen_values = true)]
    limit: u64,
}

#[derive(Debug, Args)]
struct TailArgs {
    #[command(flatten)]
    service: ServiceArgs,
    /// Where to start: earliest, latest or a sequence number to start after
    /// [default: latest]. Not with --consumer, which starts after its last
    /// ack (a new consumer at the earliest event).
    #[arg(long, value_name = "POSITION")]
    from: Option<String>,
    /// Only this channel (repeatable).
    #[arg(long = "channel", value_name = "CHANNEL_ID")]
    channels: Vec<String>,
    /// Only this LINE event type, in LINE's spelling as printed, e.g.
    /// message, follow, unknown, deadLetter (repeatable).
    #[arg(long = "type", value_name = "TYPE")]
    types: Vec<String>,
    /// Only this chat: a user, group or room id (repeatable).
    #[arg(long = "conversation", value_name = "ID")]
    conversations: Vec<String>,
    /// Follow as this durable consumer, from after its last ack.
    #[arg(long, value_name = "NAME")]
    consumer: Option<String>,
    /// Acknowledge each printed event (with --consumer).
    #[arg(long)]
    ack: bool,
    /// Exit after this many events.
    #[arg(long, value_name = "COUNT", value_parser = whole_number, allow_hyphen_values = true)]
    max: Option<u64>,
}

/// Flags beat `LINE_ADAPTER_*` environment variables, which beat the
/// `--config` file, which beats the built-in defaults. Secrets (API keys,
/// master key) are not flags: command lines are visible to other users.
#[derive(Debug, Args)]
struct ServeArgs {
    /// TOML settings file.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Every setting that is a flag (see `settings::Layer`).
    #[command(flatten)]
    flags: Layer,
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            use clap::error::ErrorKind;
            let _ = err.print();
            // --help and --version are not mistakes; every bad flag or
            // value is a bad configuration (EX_USAGE), as with settings.
            // Without a subcommand, the help is shown as the usage error
            // it is.
            return match err.kind() {
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => ExitCode::SUCCESS,
                _ => ExitCode::from(EXIT_BAD_CONFIG),
            };
        }
    };
    match cli.command {
        Command::Serve(args) => serve(*args),
        Command::Tail(args) => tail(args),
        Command::Deliveries(args) => deliveries(args),
        Command::Healthcheck(args) => healthcheck(args),
        Command::Check(args) => check(*args),
    }
}

fn check(args: ServeArgs) -> ExitCode {
    let ServeArgs { config, flags } = args;
    let loaded = match Settings::load(config.as_deref(), std::env::vars_os(), flags) {
        Ok(loaded) => loaded,
        Err(err) => {
            println!("settings: FAILED: {err}");
            return ExitCode::from(EXIT_BAD_CONFIG);
        }
    };
    for warning in &loaded.warnings {
        println!("settings: warning: {warning}");
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("line-adapter check: cannot start: {err}");
            return ExitCode::FAILURE;
        }
    };
    let mut stdout = std::io::stdout();
    match runtime.block_on(line_adapter::check::run(&loaded.settings, &mut stdout)) {
        0 => ExitCode::SUCCESS,
        _ => ExitCode::FAILURE,
    }
}

fn healthcheck(args: HealthcheckArgs) -> ExitCode {
    let url = args.url.unwrap_or_else(|| {
        let port = std::env::var("LINE_ADAPTER_HTTP_ADDR")
            .ok()
            .and_then(|addr| addr.parse::<std::net::SocketAddr>().ok())
            .map_or(8080, |addr| addr.port());
        format!("http://127.0.0.1:{port}/readyz")
    });
    let checked = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|err| err.to_string())
        .and_then(|runtime| {
            runtime.block_on(async {
                tokio::time::timeout(std::time::Duration::from_secs(3), probe(&url))
                    .await
                    .map_err(|_| "no answer within 3 s".to_owned())?
            })
        });
    match checked {
        Ok(status) if status.is_success() => ExitCode::SUCCESS,
        Ok(status) => {
            eprintln!("line-adapter healthcheck: {url} answered {status}");
            ExitCode::FAILURE
        }
        Err(err) => {
            eprintln!("line-adapter healthcheck: {url}: {err}");
            ExitCode::FAILURE
        }
    }
}

/// GETs a plain-HTTP `url` of our own listener (no proxy, no TLS: the
/// probes are served in the clear, on this host or pod).
async fn probe(url: &str) -> Result<http::StatusCode, String> {
    let uri: http::Uri = url.parse().map_err(|_| "not a URL".to_owned())?;
    if uri.scheme_str() != Some("http") {
        return Err("only http:// URLs can be checked".into());
    }
    let host = uri.host().ok_or("the URL has no host")?;
    let port = uri.port_u16().unwrap_or(80);
    let stream = tokio::net::TcpStream::connect((host, port))
        .await
        .map_err(|err| format!("cannot connect: {err}"))?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|err| err.to_string())?;
    tokio::spawn(connection);
    let request = http::Request::get(uri.path_and_query().map_or("/", |p| p.as_str()))
        .header(http::header::HOST, format!("{host}:{port}"))
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .map_err(|err| err.to_string())?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|err| err.to_string())?;
    Ok(response.status())
}

fn deliveries(args: DeliveriesArgs) -> ExitCode {
    let DeliveriesArgs {
        service: ServiceArgs { addr, api_key },
        channel,
        states,
        conversation,
        limit,
    } = args;
    let options = DeliveriesOptions {
        addr,
        api_key,
        channel_id: channel,
        states,
        conversation,
        limit: usize::try_from(limit).unwrap_or(usize::MAX),
    };
    operator_command("deliveries", async |out| {
        deliveries::run(options, out).await
    })
}

fn tail(args: TailArgs) -> ExitCode {
    let TailArgs {
        service: ServiceArgs { addr, api_key },
        from,
        channels,
        types,
        conversations,
        consumer,
        ack,
        max,
    } = args;
    let options = TailOptions {
        addr,
        from,
        channels,
        types,
        conversations,
        consumer,
        ack,
        max,
        api_key,
    };
    operator_command("tail", async |out| tail::run(options, out).await)
}

/// Runs an operator command (a gRPC client of the service) writing to
/// stdout: exit 64 for a bad flag value, 1 for any other failure.
fn operator_command<F>(name: &str, run: F) -> ExitCode
where
    F: AsyncFnOnce(&mut std::io::StdoutLock<'static>) -> Result<(), TailError>,
{
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("line-adapter {name}: cannot start: {err}");
            return ExitCode::FAILURE;
        }
    };
    let mut stdout = std::io::stdout().lock();
    match runtime.block_on(run(&mut stdout)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err @ TailError::Usage(_)) => {
            eprintln!("line-adapter {name}: {err}");
            ExitCode::from(EXIT_BAD_CONFIG)
        }
        Err(err) => {
            eprintln!("line-adapter {name}: {err}");
            ExitCode::FAILURE
        }
    }
}

fn serve(args: ServeArgs) -> ExitCode {
    let ServeArgs { config, flags } = args;
    let loaded = match Settings::load(config.as_deref(), std::env::vars_os(), flags) {
        Ok(loaded) => loaded,
        Err(err) => {
            eprintln!("line-adapter: {err}");
            return ExitCode::from(EXIT_BAD_CONFIG);
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("line-adapter: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    // The trace exporter lives on this runtime.
    let telemetry = {
        let _entered = runtime.enter();
        telemetry::init(loaded.settings.log_format)
    };
    for warning in &loaded.warnings {
        tracing::warn!("{warning}");
    }
    let result = runtime.block_on(async {
        let listeners = Listeners::bind(&loaded.settings).await?;
        app::run(loaded.settings, listeners, shutdown::signal()).await
    });
    {
        let _entered = runtime.enter();
        telemetry.shutdown();
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = %err, "line-adapter stopped with an error");
            if err.is_configuration() {
                ExitCode::from(EXIT_BAD_CONFIG)
            } else if err.is_data() {
                eprintln!("line-adapter: {err}");
                ExitCode::from(EXIT_BAD_DATA)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

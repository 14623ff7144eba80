//! `confab-coordinator`: serve a local coordinator, or sign a token for one.
//!
//! (The synthetic livestream broadcaster is `confab-broadcast`, in confab-media: the
//! coordinator does not depend on the media pipeline.)

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory, FromArgMatches, Parser, Subcommand};
use confab_coordinator::{Claims, CoordinatorConfig, SfuSetting, SigningKey};
use confab_logging::{Level, ScopeConfig};
use tracing_subscriber::layer::SubscriberExt;

#[derive(Parser)]
#[command(
    name = "confab-coordinator",
    version,
    about = "A local Stream-compatible video coordinator"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the coordinator. Prints its base URL and API key, then the embedded SFU's UDP
    /// address and the addresses it announces (or the external SFU's URL).
    ///
    /// The API secret (with --api-key) comes from CONFAB_API_SECRET or --api-secret-file;
    /// --api-secret still works but shows in the process list, so it warns.
    Serve {
        #[arg(long, default_value = "127.0.0.1:4880")]
        addr: SocketAddr,
        #[arg(long)]
        data_dir: PathBuf,
        /// Use this API key (with its secret) instead of the stored or a new one.
        #[arg(long)]
        api_key: Option<String>,
        #[command(flatten)]
        secret: SecretArgs,
        /// Serve GET /api/token?user_id= for token providers. Development only: anyone who can
        /// reach the port can get a token for any user.
        #[arg(long)]
        dev_token_endpoint: bool,
        /// Enable the test-only fault switches at POST /video/_faults (they need the API
        /// secret in the x-confab-api-secret header).
        #[arg(long, hide = true)]
        fault_injection: bool,
        /// Close sockets that send nothing for this many seconds.
        #[arg(long, default_value_t = 60)]
        idle_timeout_secs: u64,
        /// HTTP connections served at once (upgraded event sockets are not counted). Higher
        /// than the embedded app's default: a LAN server has more clients and a larger
        /// descriptor limit. Keep it well below `ulimit -n`.
        #[arg(long, default_value_t = SERVE_MAX_CONNECTIONS)]
        max_connections: usize,
        /// Viewers a livestream takes over WebRTC through the embedded SFU; the next ones
        /// are sent to its HLS playlist.
        #[arg(long, default_value_t = 100)]
        livestream_webrtc_viewers: usize,
        #[command(flatten)]
        sfu: SfuArgs,
    },
    /// Print a signed user token: the server-side token generator.
    Token {
        #[arg(long)]
        user: String,
        /// Lifetime, e.g. 90s, 30m, 1h, 7d; `never` for a token that never expires.
        #[arg(long, default_value = "24h", value_parser = parse_ttl)]
        ttl: Ttl,
        #[arg(long)]
        role: Option<String>,
        /// Limit the token to these calls, e.g. livestream:abc,default:xyz.
        #[arg(long, value_delimiter = ',')]
        call_cids: Vec<String>,
        /// Read the secret from this coordinator data directory.
        #[arg(long, conflicts_with_all = ["api_secret", "api_secret_file"])]
        data_dir: Option<PathBuf>,
        #[command(flatten)]
        secret: SecretArgs,
    },
}

/// `serve`'s connection cap (the library's default, for the embedded app, is lower).
const SERVE_MAX_CONNECTIONS: usize = 512;

/// Where the API secret comes from. The environment and a file keep it out of `ps`.
#[derive(clap::Args)]
struct SecretArgs {
    /// The API secret. Prefer CONFAB_API_SECRET or --api-secret-file: a command-line
    /// argument is visible to every user of the machine.
    #[arg(
        long,
        env = "CONFAB_API_SECRET",
        hide_env_values = true,
        conflicts_with = "api_secret_file"
    )]
    api_secret: Option<String>,
    /// Read the API secret from this file (its first line).
    #[arg(long)]
    api_secret_file: Option<PathBuf>,
}

/// Which SFU calls use: the embedded one (its signalling under /video/sfu, its media on one UDP
/// port) or, with --sfu-url, an external LiveKit-compatible server.
#[derive(clap::Args)]
struct SfuArgs {
    /// UDP port of the embedded SFU's media (0: any free port).
    #[arg(long, default_value_t = 7882)]
    sfu_udp_port: u16,
    /// Address the embedded SFU's media socket binds to.
    #[arg(long, default_value_t = IpAddr::V4(Ipv4Addr::UNSPECIFIED))]
    sfu_bind: IpAddr,
    /// Addresses offered to clients for media (ICE candidates). Default, when bound to an
    /// unspecified address: 127.0.0.1 and this machine's other IPv4 addresses; otherwise
    /// the bound address.
    #[arg(long, value_delimiter = ',', value_name = "IP[,IP...]")]
    sfu_announce: Vec<IpAddr>,
    /// Send calls to this LiveKit-compatible SFU (e.g. wss://sfu.example.com) instead of
    /// running one here. Needs --sfu-api-key, and the secret in CONFAB_SFU_API_SECRET or
    /// --sfu-api-secret-file.
    #[arg(
        long,
        value_name = "URL",
        requires = "sfu_api_key",
        conflicts_with_all = ["sfu_udp_port", "sfu_bind", "sfu_announce"]
    )]
    sfu_url: Option<String>,
    /// The external SFU's API key.
    #[arg(long, requires = "sfu_url")]
    sfu_api_key: Option<String>,
    /// Read the external SFU's API secret from this file (its first line); otherwise it comes
    /// from CONFAB_SFU_API_SECRET.
    #[arg(long, value_name = "PATH", requires = "sfu_url")]
    sfu_api_secret_file: Option<PathBuf>,
}

/// Where the external SFU's secret comes from when no file is given.
const SFU_SECRET_ENV: &str = "CONFAB_SFU_API_SECRET";

impl SfuArgs {
    fn setting(self) -> Result<SfuSetting, SecretError> {
        let (Some(url), Some(api_key)) = (self.sfu_url, self.sfu_api_key) else {
            let announce = if self.sfu_announce.is_empty() && self.sfu_bind.is_unspecified() {
                default_announce()
            } else {
                self.sfu_announce
            };
            return Ok(SfuSetting::Embedded {
                udp_bind: SocketAddr::new(self.sfu_bind, self.sfu_udp_port),
                announce,
            });
        };
        let api_secret = match self.sfu_api_secret_file {
            Some(path) => read_secret_file(&path, "the SFU's API secret")?,
            None => std::env::var(SFU_SECRET_ENV)
                .ok()
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .ok_or(SecretError::NoSfuSecret)?,
        };
        Ok(SfuSetting::External {
            url,
            api_key,
            api_secret,
        })
    }
}

/// 127.0.0.1 and this machine's other IPv4 addresses: what an SFU bound to every interface
/// offers, so that clients on this machine and on its networks can all reach it.
fn default_announce() -> Vec<IpAddr> {
    let mut ips = vec![IpAddr::V4(Ipv4Addr::LOCALHOST)];
    match if_addrs::get_if_addrs() {
        Ok(interfaces) => {
            for interface in interfaces {
                let ip = interface.ip();
                if ip.is_ipv4() && !ip.is_loopback() && !ip.is_unspecified() && !ips.contains(&ip) {
                    ips.push(ip);
                }
            }
        }
        Err(e) => {
            tracing::warn!(target: "coordinator", error = %e, "could not list this machine's addresses: the SFU announces 127.0.0.1 only (see --sfu-announce)");
        }
    }
    ips
}

/// A token's lifetime; `None` only when asked for with `never`.
#[derive(Clone, Copy, Debug)]
struct Ttl(Option<Duration>);

fn parse_ttl(text: &str) -> Result<Ttl, String> {
    if text == "never" {
        return Ok(Ttl(None));
    }
    let (number, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 90s, 30m, 1h, 7d or never"))?;
    let unit_secs = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => return Err(format!("unknown unit {unit:?}: use s, m, h or d")),
    };
    n.checked_mul(unit_secs)
        .filter(|s| i64::try_from(*s).is_ok())
        .map(|s| Ttl(Some(Duration::from_secs(s))))
        .ok_or_else(|| format!("{text:?} is too long"))
}

/// Why a secret could not be read.
#[derive(Debug, thiserror::Error)]
enum SecretError {
    #[error("could not read {what} from {path}: {source}")]
    Read {
        what: &'static str,
        path: String,
        source: std::io::Error,
    },
    #[error("{path} holds no secret (expected {what} on its first line)")]
    Empty { what: &'static str, path: String },
    #[error(
        "--sfu-url needs the SFU's API secret: set {SFU_SECRET_ENV} or give --sfu-api-secret-file"
    )]
    NoSfuSecret,
}

/// The first line of `path`, trimmed: `what` (e.g. "the API secret").
fn read_secret_file(path: &std::path::Path, what: &'static str) -> Result<String, SecretError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| SecretError::Read {
        what,
        path: shown.clone(),
        source,
    })?;
    let secret = text.lines().next().unwrap_or_default().trim().to_owned();
    if secret.is_empty() {
        return Err(SecretError::Empty { what, path: shown });
    }
    Ok(secret)
}

impl SecretArgs {
    /// The secret from the file, the environment or the argument, warning about the last.
    fn resolve(self, matches: &ArgMatches) -> Result<Option<String>, SecretError> {
        if let Some(path) = self.api_secret_file {
            return read_secret_file(&path, "the API secret").map(Some);
        }
        if matches.value_source("api_secret") == Some(ValueSource::CommandLine) {
            tracing::warn!(
                target: "coordinator",
                "--api-secret is visible to other users in the process list: use CONFAB_API_SECRET or --api-secret-file"
            );
        }
        Ok(self.api_secret)
    }
}

/// Routes the CLI's logs through confab-logging, whose sinks scrub tokens and registered
/// secrets. CONFAB_LOG sets levels, e.g. `debug` or `coordinator=debug,default=warn`.
fn init_logging() {
    let subscriber = tracing_subscriber::registry().with(confab_logging::layer());
    let _ = tracing::subscriber::set_global_default(subscriber);
    confab_logging::configure_loggers([("default", ScopeConfig::level(Level::Info))]);
    if let Ok(spec) = std::env::var("CONFAB_LOG") {
        for part in spec.split(',').filter(|p| !p.trim().is_empty()) {
            let (scope, level) = part.split_once('=').unwrap_or(("default", part));
            match level.trim().parse::<Level>() {
                Ok(level) => {
                    confab_logging::configure_loggers([(scope.trim(), ScopeConfig::level(level))])
                }
                Err(e) => eprintln!("confab-coordinator: ignoring CONFAB_LOG entry {part:?}: {e}"),
            }
        }
    }
}

fn subcommand_matches(matches: &ArgMatches) -> ArgMatches {
    matches
        .subcommand()
        .map(|(_, sub)| sub.clone())
        .unwrap_or_default()
}

#[tokio::main]
async fn main() -> ExitCode {
    init_logging();
    let matches = Cli::command().get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    let sub = subcommand_matches(&matches);
    match cli.command {
        Command::Serve {
            addr,
            data_dir,
            api_key,
            secret,
            dev_token_endpoint,
            fault_injection,
            idle_timeout_secs,
            max_connections,
            livestream_webrtc_viewers,
            sfu,
        } => {
            let sfu = match sfu.setting() {
                Ok(sfu) => sfu,
                Err(e) => {
                    eprintln!("confab-coordinator: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let secret = match secret.resolve(&sub) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("confab-coordinator: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let app = match (api_key, secret) {
                (Some(key), Some(secret)) => Some((key, secret)),
                (None, None) => None,
                (Some(_), None) => {
                    eprintln!("confab-coordinator: --api-key needs its secret: CONFAB_API_SECRET or --api-secret-file");
                    return ExitCode::FAILURE;
                }
                (None, Some(_)) => {
                    eprintln!("confab-coordinator: an API secret needs --api-key");
                    return ExitCode::FAILURE;
                }
            };
            let announced = match &sfu {
                SfuSetting::Embedded { announce, .. } => announce.clone(),
                SfuSetting::External { .. } => Vec::new(),
            };
            let mut config = CoordinatorConfig {
                addr,
                data_dir: Some(data_dir),
                app,
                dev_token_endpoint,
                fault_injection,
                sfu,
                ..CoordinatorConfig::default()
            };
            config.limits.idle_timeout = Duration::from_secs(idle_timeout_secs.max(1));
            config.limits.max_connections = max_connections.max(1);
            config.limits.livestream_webrtc_viewers = livestream_webrtc_viewers;
            let running = match confab_coordinator::start(config).await {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("confab-coordinator: {e}");
                    return ExitCode::FAILURE;
                }
            };
            print_status(&format!("base_url={}", running.base_url()));
            print_status(&format!("api_key={}", running.api_key()));
            match running.sfu() {
                Some(sfu) => {
                    print_status(&format!("sfu_udp_addr={}", sfu.udp_addr()));
                    let announced: Vec<String> =
                        announced.iter().map(ToString::to_string).collect();
                    if !announced.is_empty() {
                        print_status(&format!("sfu_announce={}", announced.join(",")));
                    }
                }
                None => print_status(&format!("sfu_url={}", running.sfu_url())),
            }
            let _ = tokio::signal::ctrl_c().await;
            running.shutdown().await;
            ExitCode::SUCCESS
        }
        Command::Token {
            user,
            ttl,
            role,
            call_cids,
            data_dir,
            secret,
        } => {
            let secret = match (secret.resolve(&sub), data_dir) {
                (Err(e), _) => Err(e.to_string()),
                (Ok(Some(secret)), _) => Ok(secret),
                (Ok(None), Some(dir)) => read_secret(&dir),
                (Ok(None), None) => {
                    Err("give --data-dir, CONFAB_API_SECRET or --api-secret-file".to_owned())
                }
            };
            let secret = match secret {
                Ok(secret) => secret,
                Err(e) => {
                    eprintln!("confab-coordinator: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let claims = Claims {
                user_id: Some(user),
                role,
                call_cids: (!call_cids.is_empty()).then_some(call_cids),
                ..Claims::default()
            };
            println!("{}", SigningKey::new(secret).sign_issued_now(claims, ttl.0));
            ExitCode::SUCCESS
        }
    }
}

/// Writes a status line to stdout for whoever started the server. A reader that went away
/// (a closed pipe) must not take the server down with it, so a failed write is only logged.
fn print_status(line: &str) {
    let mut out = std::io::stdout().lock();
    if let Err(e) = writeln!(out, "{line}").and_then(|()| out.flush()) {
        tracing::warn!(target: "coordinator", error = %e, "could not write the status to stdout");
    }
}

fn read_secret(dir: &std::path::Path) -> Result<String, String> {
    read_app(dir).map(|(_, secret)| secret)
}

/// The API key and secret a coordinator data directory holds.
fn read_app(dir: &std::path::Path) -> Result<(String, String), String> {
    if !dir.join(confab_coordinator::store::DB_FILE).exists() {
        return Err(format!(
            "{} holds no coordinator data: run serve with it first",
            dir.display()
        ));
    }
    let store = confab_coordinator::store::Store::open(dir).map_err(|e| e.to_string())?;
    match store.app().map_err(|e| e.to_string())? {
        Some(app) => Ok(app),
        None => Err("the data directory has no app yet: run serve with it first".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_announce_list_is_loopback_then_this_machines_ipv4_addresses() {
        let ips = default_announce();
        assert_eq!(ips.first(), Some(&IpAddr::V4(Ipv4Addr::LOCALHOST)));
        for (i, ip) in ips.iter().enumerate().skip(1) {
            assert!(
                ip.is_ipv4() && !ip.is_loopback() && !ip.is_unspecified(),
                "{ip}"
            );
            assert!(!ips[..i].contains(ip), "{ip} twice");
        }
    }

    #[test]
    fn a_bound_address_is_announced_as_itself_unless_told_otherwise() {
        let args = SfuArgs {
            sfu_udp_port: 0,
            sfu_bind: IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3)),
            sfu_announce: Vec::new(),
            sfu_url: None,
            sfu_api_key: None,
            sfu_api_secret_file: None,
        };
        match args.setting() {
            Ok(SfuSetting::Embedded { udp_bind, announce }) => {
                assert_eq!(udp_bind, "127.0.0.3:0".parse().unwrap());
                assert!(announce.is_empty(), "the SFU announces its bound address");
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}

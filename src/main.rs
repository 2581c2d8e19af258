//! The `nonstop` command: parses the command line, loads the configuration
//! and starts the station. Only wiring lives here.

mod commands;

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use nonstop::config::Config;
use nonstop::station::Station;

/// mimalloc rather than glibc's malloc: with glibc, each thread's arena kept
/// the memory of ten thousand listeners who had left (7.7 KiB per listener
/// against 1.5 KiB with a single arena, `nonstop loadtest`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// An endless, beatmatched internet radio station.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the station (the default when no command is given).
    Serve(ServeArgs),
    /// Analyse audio files or folders (tempo, beats, key, loudness...) without a server.
    Analyze {
        /// One JSON object per file per line.
        #[arg(long)]
        json: bool,
        #[arg(required = true, value_name = "PATH")]
        paths: Vec<PathBuf>,
    },
    /// Analyse the library into the catalogue, with progress and a summary.
    Scan(CommonArgs),
    /// Render the transition from A to B as the station would (WAV), with a report.
    Mix {
        /// The track playing (any audio file).
        #[arg(value_name = "A")]
        a: PathBuf,
        /// The track coming in.
        #[arg(value_name = "B")]
        b: PathBuf,
        /// Output WAV file.
        #[arg(long, value_name = "FILE.wav")]
        out: PathBuf,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        /// Configuration file (for the [mixer] settings).
        #[arg(long, value_name = "PATH")]
        config: Option<PathBuf>,
    },
    /// Render N minutes of the station unpaced to an MP3 file and print the speed.
    Render {
        /// Minutes of audio to render.
        #[arg(long, default_value_t = 10.0)]
        minutes: f64,
        /// Output MP3 file.
        #[arg(long, value_name = "FILE.mp3")]
        out: PathBuf,
        /// Write the process's memory (audio_s,rss_bytes) once a second to this CSV file.
        #[arg(long, value_name = "FILE.csv")]
        memory_log: Option<PathBuf>,
        #[command(flatten)]
        args: CommonArgs,
    },
    /// Work with track-ordering plugins.
    Plugin {
        #[command(subcommand)]
        action: PluginAction,
    },
    /// Transitions between annotated recordings, checked by marker clicks the
    /// analysis cannot see (DIR holds audio/ and annotations/).
    EvalMix {
        #[arg(value_name = "DIR")]
        dir: PathBuf,
        /// Print only a JSON summary.
        #[arg(long)]
        json: bool,
        /// Configuration file (for the [mixer] settings).
        #[arg(long, value_name = "PATH")]
        config: Option<PathBuf>,
    },
    /// Many listeners against a stream (nonstop, Icecast...), every byte timed:
    /// connected/failed/dropped, first-byte times, delivery rates, pauses,
    /// and the server's CPU and memory when given its pid.
    Loadtest {
        /// The stream, e.g. http://127.0.0.1:8000/stream.mp3
        #[arg(long)]
        url: String,
        /// How many listeners.
        #[arg(long, default_value_t = 1000)]
        listeners: usize,
        /// New listeners per second.
        #[arg(long, default_value_t = 1000.0)]
        ramp: f64,
        /// Seconds every listener is measured once all have arrived.
        #[arg(long, default_value_t = 30.0)]
        seconds: f64,
        /// The server's process id, for its CPU and memory.
        #[arg(long)]
        pid: Option<u32>,
        /// The stream's bitrate [default: read from its first MP3 frame].
        #[arg(long)]
        kbps: Option<u32>,
        /// Instead: this many connect/disconnect cycles (64 at a time), then
        /// the server's memory before and after.
        #[arg(long, value_name = "CYCLES")]
        churn: Option<usize>,
        /// Print the figures as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Control a running station through its admin API (needs server.admin_token).
    Ctl {
        #[command(subcommand)]
        action: CtlAction,
        /// The station [default: from the config's server.listen].
        #[arg(long, value_name = "URL")]
        url: Option<String>,
        #[command(flatten)]
        args: CommonArgs,
    },
    /// Score the analysis against annotations: beat and downbeat F-measure,
    /// tempo Acc1/Acc2, key score, per file and on average.
    #[command(alias = "eval-beats")]
    Eval {
        /// Folder of annotations: <stem>.beats (time [bar position] per
        /// line), <stem>.bpm, <stem>.key. Optional when PATH is one folder
        /// holding audio/ and annotations/.
        #[arg(long, value_name = "DIR")]
        annotations: Option<PathBuf>,
        /// Also score each clip cut 0.9, 1.7, 2.4, 3.0, 3.7 and 5.1 s later,
        /// and print the means over all seven starts: a clip's figures
        /// swing with where it starts.
        #[arg(long)]
        cuts: bool,
        /// One JSON object per file, then a summary object.
        #[arg(long)]
        json: bool,
        /// Audio files or folders.
        #[arg(required = true, value_name = "PATH")]
        paths: Vec<PathBuf>,
    },
}

#[derive(Subcommand, Debug, Clone)]
enum CtlAction {
    /// Mix out of the current track early, on the next downbeat.
    Skip,
    /// Sync the library now.
    Rescan,
    /// The full status, with the listeners table.
    Status,
    /// Switch the ordering plugin (after the same dry run as a saved edit);
    /// without a name, list the plugins.
    Plugin {
        /// A plugin in the plugins folder, without `.rhai`.
        name: Option<String>,
    },
    /// Request the best match for QUERY (title and/or artist words); it
    /// plays within the next few tracks. Without a query, list requests.
    Request {
        /// Words of the title or artist.
        query: Vec<String>,
    },
}

#[derive(Subcommand, Debug)]
enum PluginAction {
    /// Compile a plugin and dry-run it against the catalogue: prints the
    /// first picks, or the error and its line (exit status 1).
    Check {
        /// The plugin file (a Rhai script defining next_track).
        #[arg(value_name = "PLUGIN.rhai")]
        path: PathBuf,
        /// How many picks to make.
        #[arg(long, default_value_t = nonstop::ordering::DRY_RUN_PICKS)]
        picks: usize,
        #[command(flatten)]
        args: CommonArgs,
    },
}

#[derive(clap::Args, Debug, Clone, Default)]
struct ServeArgs {
    /// Address to listen on, e.g. 127.0.0.1:0 for any free port (overrides server.listen).
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,
    #[command(flatten)]
    common: CommonArgs,
}

#[derive(clap::Args, Debug, Clone, Default)]
struct CommonArgs {
    /// Configuration file [default: config/nonstop.toml if it exists].
    #[arg(long, value_name = "PATH")]
    config: Option<PathBuf>,
    /// Data folder for the catalogue (overrides paths.data_dir).
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
    /// Music library folder (overrides paths.library_dir).
    #[arg(long, value_name = "DIR")]
    library: Option<PathBuf>,
}

impl CommonArgs {
    /// These, with what is missing taken from `outer` (the options given
    /// before the command: `nonstop --library DIR scan`).
    fn or(self, outer: &CommonArgs) -> CommonArgs {
        CommonArgs {
            config: self.config.or_else(|| outer.config.clone()),
            data: self.data.or_else(|| outer.data.clone()),
            library: self.library.or_else(|| outer.library.clone()),
        }
    }
}

fn load_config(args: &CommonArgs) -> anyhow::Result<Config> {
    let default = PathBuf::from("config/nonstop.toml");
    let mut config = match &args.config {
        Some(path) => Config::load(path)?,
        None if default.exists() => Config::load(&default)?,
        None => Config::default(),
    };
    if let Some(data) = &args.data {
        config.paths.data_dir = data.clone();
    }
    if let Some(library) = &args.library {
        config.paths.library_dir = Some(library.clone());
    }
    if let Ok(token) = std::env::var("NONSTOP_ADMIN_TOKEN") {
        config.server.admin_token = Some(token);
    }
    config.validate()?;
    Ok(config)
}

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info,symphonia=off".into()),
        )
        .with_writer(std::io::stderr)
        // Colours only for a person at a terminal, never into a log file.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    // Panics are contained where they happen (one file, one stage) and
    // reported there; the hook only logs one line instead of a backtrace.
    std::panic::set_hook(Box::new(|info| {
        let thread = std::thread::current();
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        let at = info.location().map(|l| format!(" at {}:{}", l.file(), l.line())).unwrap_or_default();
        tracing::warn!("thread '{}' panicked{at}: {message}", thread.name().unwrap_or("unnamed"));
    }));
    // User errors print as messages, whatever RUST_BACKTRACE says.
    if let Err(e) = run() {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let outer = cli.serve.common.clone();
    let load_config = |args: &CommonArgs| load_config(&args.clone().or(&outer));
    let args = match cli.command {
        Some(Command::Serve(args)) => ServeArgs { listen: args.listen.or(cli.serve.listen), common: args.common.or(&outer) },
        None => cli.serve,
        Some(Command::Analyze { json, paths }) => return exit_if_none_ok(commands::analyze(&paths, json)?),
        Some(Command::Scan(args)) => return commands::scan(&load_config(&args)?),
        Some(Command::Mix { a, b, out, json, config }) => {
            let args = CommonArgs { config, ..Default::default() };
            return commands::mix(&load_config(&args)?, &a, &b, &out, json);
        }
        Some(Command::Render { minutes, out, memory_log, args }) => {
            let config = load_config(&args)?;
            config.check_plugin()?;
            return commands::render(&config, minutes, &out, memory_log.as_deref());
        }
        Some(Command::Plugin { action: PluginAction::Check { path, picks, args } }) => {
            return exit_if_none_ok(commands::plugin_check(&load_config(&args)?, &path, picks)?)
        }
        Some(Command::EvalMix { dir, json, config }) => {
            let args = CommonArgs { config, ..Default::default() };
            return exit_if_none_ok(commands::eval_mix(&load_config(&args)?, &dir, json)?);
        }
        Some(Command::Ctl { action, url, args }) => {
            let config = load_config(&args)?;
            let action = match action {
                CtlAction::Skip => commands::Ctl::Call("POST", "/admin/skip", None),
                CtlAction::Rescan => commands::Ctl::Call("POST", "/admin/rescan", None),
                CtlAction::Status => commands::Ctl::Call("GET", "/admin/status", None),
                CtlAction::Plugin { name: None } => commands::Ctl::Call("GET", "/admin/plugin", None),
                CtlAction::Plugin { name: Some(name) } => {
                    commands::Ctl::Call("POST", "/admin/plugin", Some(serde_json::json!({ "name": name })))
                }
                CtlAction::Request { query } if query.is_empty() => commands::Ctl::Call("GET", "/admin/requests", None),
                CtlAction::Request { query } => commands::Ctl::Request(query.join(" ")),
            };
            return commands::ctl(&config, url.as_deref(), action);
        }
        Some(Command::Loadtest { url, listeners, ramp, seconds, pid, kbps, churn, json }) => {
            let options = nonstop::loadtest::Options { url, listeners, ramp_per_s: ramp, seconds, pid, kbps };
            return commands::loadtest(&options, churn, json);
        }
        Some(Command::Eval { annotations, cuts, json, paths }) => {
            return exit_if_none_ok(commands::eval(annotations.as_deref(), &paths, cuts, json)?)
        }
    };
    let mut config = load_config(&args.common)?;
    if let Some(listen) = args.listen {
        config.server.listen = listen;
    }
    config.check_plugin()?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(serve(config))
}

/// Exit status 1 when no file succeeded (the per-file errors are printed).
fn exit_if_none_ok(any_ok: bool) -> anyhow::Result<()> {
    if !any_ok {
        std::process::exit(1);
    }
    Ok(())
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let open_files = nonstop::raise_open_files_limit();
    // Every listener holds a socket; the rest (library files, catalogue, watchers) a few dozen.
    if (open_files as usize) < config.server.max_listeners + 64 {
        tracing::warn!(
            "the open-files limit ({open_files}) is below server.max_listeners ({}) + 64: \
             listeners past it will be refused (raise it with `ulimit -n` or LimitNOFILE=)",
            config.server.max_listeners
        );
    }
    let listener = nonstop::http::bind(config.server.listen, config.server.accept_backlog)
        .with_context(|| format!("cannot listen on {}", config.server.listen))?;
    let station = Station::start(config, listener).await?;
    let addr = station.local_addr();
    if addr.ip().is_unspecified() {
        // Every interface: say where players can reach it.
        println!("listening on {addr} (every interface)");
        println!("  on this machine:  http://127.0.0.1:{}/   stream: http://127.0.0.1:{}/stream.mp3", addr.port(), addr.port());
        if let Some(ip) = outward_address() {
            println!("  from elsewhere:   http://{ip}:{}/   stream: http://{ip}:{}/stream.mp3", addr.port(), addr.port());
        }
    } else {
        println!("listening on http://{addr}");
        println!("  stream:   http://{addr}/stream.mp3");
        println!("  status:   http://{addr}/status");
    }
    wait_for_signal().await;
    eprintln!("shutting down (press Ctrl-C again to exit at once)");
    // A second signal ends the process without waiting.
    tokio::spawn(async {
        wait_for_signal().await;
        eprintln!("exiting at once");
        std::process::exit(130);
    });
    station.shutdown().await;
    eprintln!("stopped");
    Ok(())
}

/// This machine's address on the network its default route leads to (a UDP
/// "connection" only consults the routing table; nothing is sent).
fn outward_address() -> Option<std::net::IpAddr> {
    let socket = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    socket.connect("192.0.2.1:9").ok()?;
    let ip = socket.local_addr().ok()?.ip();
    (!ip.is_unspecified() && !ip.is_loopback()).then_some(ip)
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

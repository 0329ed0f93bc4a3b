//! `mcpgate serve`: load and check a policy folder, compile it, and run the gateway.

use crate::gateway::server::{serve, shutdown_signal};
use crate::gateway::{EnvSecrets, Gateway};
use crate::session::seal::Sealer;
use mcpgate_compiler::Program;
use mcpgate_compiler::repo;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The policy folder (`mcpgate.yaml`, `policies/`, `tests/`).
    #[arg(long, default_value = ".")]
    pub policy: PathBuf,
    /// Address to listen on (default: `gateway.listen` from `mcpgate.yaml`); port 0 lets
    /// the OS choose, and the address is printed.
    #[arg(long)]
    pub listen: Option<String>,
    /// Where the gateway keeps its state (the session key); default `.mcpgate-state`.
    #[arg(long, env = "MCPGATE_STATE")]
    pub state: Option<PathBuf>,
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

fn parse_listen(s: &str) -> Option<SocketAddr> {
    if let Ok(a) = s.parse() {
        return Some(a);
    }
    let port = s.strip_prefix("localhost:")?.parse().ok()?;
    Some(SocketAddr::from(([127, 0, 0, 1], port)))
}

/// Creates the state dir with mode 0700 (and tightens an existing one).
fn prepare_state_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

pub fn run(args: Args) -> ExitCode {
    init_logging();
    let files = match repo::read_dir(&args.policy) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: cannot read `{}`: {e}", args.policy.display());
            return ExitCode::from(2);
        }
    };
    let checked = repo::check_files(files);
    if checked.has_errors() {
        eprint!("{}", checked.rendered);
        eprintln!(
            "error: the policy in `{}` has {} error(s); the gateway does not start",
            args.policy.display(),
            checked.errors
        );
        return ExitCode::from(1);
    }
    let config = checked.config.unwrap_or_default();
    let listen_text = args.listen.unwrap_or_else(|| config.gateway.listen.clone());
    let Some(listen) = parse_listen(&listen_text) else {
        eprintln!("error: cannot parse listen address `{listen_text}`");
        eprintln!("  help: write it as IP:PORT, e.g. `127.0.0.1:8080`");
        return ExitCode::from(2);
    };
    if config.identity.is_some() {
        eprintln!("error: `identity` is configured but this build cannot verify callers");
        eprintln!("  help: remove the `identity` section to serve anonymous callers on loopback");
        return ExitCode::from(2);
    }
    if !listen.ip().is_loopback() {
        eprintln!("error: refusing to listen on `{listen}` without an `identity` section");
        eprintln!(
            "  help: every caller would be anonymous; listen on 127.0.0.1, or configure `identity` in mcpgate.yaml"
        );
        return ExitCode::from(2);
    }
    let state = args
        .state
        .unwrap_or_else(|| PathBuf::from(".mcpgate-state"));
    if let Err(e) = prepare_state_dir(&state) {
        eprintln!("error: cannot create state dir `{}`: {e}", state.display());
        return ExitCode::from(2);
    }
    let sealer = match Sealer::load_or_create(&state) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: session key: {e}");
            return ExitCode::from(2);
        }
    };
    let program = Program::compile(&checked.policy, None);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    runtime.block_on(async move {
        let listener = match tokio::net::TcpListener::bind(listen).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("error: cannot listen on `{listen}`: {e}");
                return ExitCode::from(2);
            }
        };
        let bound = listener.local_addr().unwrap_or(listen);
        let gw = match Gateway::new(&config, program, sealer, bound, &EnvSecrets) {
            Ok(g) => Arc::new(g),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        };
        {
            let loaded = gw.program.load();
            tracing::info!(
                rules = loaded.program.rules().len(),
                program = %loaded.hash,
                upstreams = ?gw.upstreams.keys().collect::<Vec<_>>(),
                "policy loaded"
            );
        }
        println!("listening on http://{bound}");
        use std::io::Write;
        let _ = std::io::stdout().flush();
        tracing::info!("listening on http://{bound}");
        serve(listener, gw, shutdown_signal()).await;
        ExitCode::SUCCESS
    })
}

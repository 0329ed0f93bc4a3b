//! The credential vault end to end: `mcpgate init`, `mcpgate secret set` through stdin,
//! `mcpgate serve` injecting the stored secret into a real upstream (the Python SDK server in
//! `tests/peers/header_recorder_server.py`, which records every request it gets), and a
//! session whose whole output is searched for the secret and the client's token.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use mcpgate_tests::http::{McpHttp, initialize_request, rpc};
use mcpgate_tests::peers::{self, HttpPeer};
use mcpgate_tests::process::{self, Finished};
use mcpgate_tests::{Gateway, http, paths};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// The upstream credential the tests store; unlike anything else the gateway prints.
const SECRET: &str = "sk-upstream-7Qe2vN9xKp4LmW8rT1zY";
/// The client's bearer token when no real token is issued.
const CLIENT_TOKEN_FALLBACK: &str = "client-token-Jd83hQpZ0vXb";

/// Runs `mcpgate ARGS` with `stdin` and extra environment variables.
fn mcpgate(cwd: &Path, args: &[&str], stdin: &[u8], env: &[(&str, &str)]) -> Finished {
    let mut cmd = Command::new(paths::mcpgate_bin());
    cmd.args(args)
        .current_dir(cwd)
        .env("NO_COLOR", "1")
        .env_remove("MCPGATE_MASTER_KEY")
        .env_remove("MCPGATE_MASTER_KEY_FILE")
        .env_remove("MCPGATE_STATE");
    for (k, v) in env {
        cmd.env(k, v);
    }
    process::run("mcpgate", &mut cmd, stdin, Duration::from_secs(60))
}

/// A folder set up by `mcpgate init`: `repo/` (the starter policy) and `state/`.
struct Setup {
    dir: tempfile::TempDir,
    /// Everything the CLI printed, for the leak check.
    printed: String,
}

impl Setup {
    fn init() -> Setup {
        let dir = tempfile::Builder::new()
            .prefix("mcpgate-vault-")
            .tempdir()
            .unwrap();
        let mut setup = Setup {
            dir,
            printed: String::new(),
        };
        let done = setup.run(&["init", "--state", "state", "repo"], b"");
        assert_eq!(done.code(), 0, "{done}");
        setup
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn run(&mut self, args: &[&str], stdin: &[u8]) -> Finished {
        let done = mcpgate(self.dir.path(), args, stdin, &[]);
        self.printed.push_str(&done.stdout);
        self.printed.push_str(&done.stderr);
        done
    }

    fn set_secret(&mut self, name: &str, value: &str) {
        let done = self.run(
            &["secret", "set", name, "--state", "state"],
            format!("{value}\n").as_bytes(),
        );
        assert_eq!(done.code(), 0, "{done}");
    }

    /// A client token: a real one from `mcpgate token issue` once the gateway checks them,
    /// else a bearer value the gateway ignores.
    fn client_token(&mut self) -> String {
        // Not added to `printed`: issuing is the one place a token is shown, once.
        let done = mcpgate(
            self.dir.path(),
            &[
                "token",
                "issue",
                "--subject",
                "ada@example.com",
                "--kind",
                "human",
                "--reason",
                "vault end-to-end test",
                "--state",
                "state",
                "--format",
                "json",
            ],
            b"",
            &[],
        );
        if done.code() != 0 {
            return CLIENT_TOKEN_FALLBACK.to_owned();
        }
        let issued: Value = serde_json::from_str(done.stdout.trim())
            .unwrap_or_else(|e| panic!("token issue printed no JSON ({e}): {done}"));
        issued["token"]
            .as_str()
            .unwrap_or_else(|| panic!("no token in {issued}"))
            .to_owned()
    }

    /// Rewrites `repo/mcpgate.yaml` with the demo server and `servers`, and adds `rules`.
    fn configure(&self, servers: Value, rules: &str) {
        let mut all = json!({"demo": {"command": "mcpgate", "args": ["demo-server"]}});
        for (name, server) in servers.as_object().unwrap() {
            all[name] = server.clone();
        }
        let config = json!({ "servers": all });
        std::fs::write(
            self.path("repo/mcpgate.yaml"),
            serde_json::to_string_pretty(&config).unwrap(),
        )
        .unwrap();
        std::fs::write(self.path("repo/policies/upstreams.mcpg"), rules).unwrap();
    }

    fn serve(&self, env: &[(&str, &str)]) -> Gateway {
        let policy = self.path("repo").to_str().unwrap().to_owned();
        Gateway::start_in(&self.path("state"), &["--policy".to_owned(), policy], env)
    }
}

/// A raw MCP session on `path` whose every request carries `Authorization: Bearer TOKEN`.
struct Client {
    mcp: McpHttp,
    auth: String,
}

impl Client {
    fn connect(gateway: &Gateway, path: &str, token: &str) -> Client {
        let mut mcp = McpHttp::new(gateway.addr(), path);
        let auth = format!("Bearer {token}");
        let init = mcp.post_raw(
            initialize_request(1).to_string().as_bytes(),
            &[("Authorization", &auth)],
        );
        assert_eq!(init.status, 200, "initialize: {init}\n{}", gateway.log());
        mcp.session = init.header("mcp-session-id").map(str::to_owned);
        assert!(mcp.session.is_some(), "no session id: {init}");
        let note = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
        mcp.post_raw(note.to_string().as_bytes(), &[("Authorization", &auth)]);
        Client { mcp, auth }
    }

    fn call_tool(&self, id: u64, name: &str, arguments: Value) -> Value {
        let request = rpc(
            id,
            "tools/call",
            json!({"name": name, "arguments": arguments}),
        );
        let response = self.mcp.post_raw(
            request.to_string().as_bytes(),
            &[("Authorization", &self.auth)],
        );
        response
            .messages()
            .into_iter()
            .rfind(|m| m.get("id") == Some(&json!(id)))
            .unwrap_or_else(|| panic!("no answer to `{name}`: {response}"))
    }
}

fn text_of(answer: &Value) -> String {
    peers::result_text(&answer["result"])
}

fn sha256_hex(text: &str) -> String {
    // The recorder reports a digest of what it saw; Python computes the expected one too,
    // so the test needs no hashing crate.
    let out = Command::new(paths::python())
        .args([
            "-c",
            "import hashlib,sys; print(hashlib.sha256(sys.argv[1].encode()).hexdigest())",
            text,
        ])
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[test]
fn init_is_idempotent_and_leaves_a_checked_policy_and_an_owner_only_key() {
    let mut setup = Setup::init();
    let key_path = setup.path("state/master.key");
    let key = std::fs::read(&key_path).unwrap();
    assert_eq!(key.len(), 32);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&key_path), 0o600);
        assert_eq!(mode(&setup.path("state")), 0o700);
    }
    for file in ["mcpgate.yaml", "policies/demo.mcpg", "tests/demo.yaml"] {
        assert!(setup.path("repo").join(file).is_file(), "{file} missing");
    }
    assert!(setup.printed.contains("next steps"), "{}", setup.printed);

    // A second run keeps everything, the key above all.
    std::fs::write(setup.path("repo/policies/demo.mcpg"), "allow demo.echo;\n").unwrap();
    let again = setup.run(&["init", "--state", "state", "repo"], b"");
    assert_eq!(again.code(), 0, "{again}");
    assert!(again.stdout.contains("kept master key"), "{again}");
    assert_eq!(std::fs::read(&key_path).unwrap(), key);
    assert_eq!(
        std::fs::read_to_string(setup.path("repo/policies/demo.mcpg")).unwrap(),
        "allow demo.echo;\n"
    );

    // The starter policy passes its own tests.
    std::fs::remove_dir_all(setup.path("repo")).unwrap();
    assert_eq!(
        setup.run(&["init", "--state", "state", "repo"], b"").code(),
        0
    );
    let check = setup.run(&["check", "repo"], b"");
    assert_eq!(check.code(), 0, "{check}");
}

#[test]
fn secrets_are_set_from_stdin_listed_without_values_and_removed() {
    let mut setup = Setup::init();
    setup.set_secret("API_KEY", SECRET);
    let list = setup.run(
        &["secret", "list", "--state", "state", "--format", "json"],
        b"",
    );
    assert_eq!(list.code(), 0, "{list}");
    let listed: Value = serde_json::from_str(&list.stdout).unwrap();
    assert_eq!(listed["secrets"][0]["name"], "API_KEY", "{listed}");
    assert!(listed["secrets"][0]["created_at"].is_string(), "{listed}");

    let empty = setup.run(&["secret", "set", "EMPTY", "--state", "state"], b"\n");
    assert_eq!(empty.code(), 1, "{empty}");
    assert!(empty.stderr.contains("empty"), "{empty}");
    let bad = setup.run(&["secret", "set", "bad-name", "--state", "state"], b"x\n");
    assert_eq!(bad.code(), 1, "{bad}");

    // Another key neither reads nor extends this vault.
    let other_key = "11".repeat(32);
    let wrong = mcpgate(
        setup.dir.path(),
        &["secret", "set", "OTHER", "--state", "state"],
        b"value\n",
        &[("MCPGATE_MASTER_KEY", &other_key)],
    );
    assert_eq!(wrong.code(), 2, "{wrong}");
    assert!(wrong.stderr.contains("does not open this vault"), "{wrong}");

    let rm = setup.run(&["secret", "rm", "API_KEY", "--state", "state"], b"");
    assert_eq!(rm.code(), 0, "{rm}");
    let again = setup.run(&["secret", "rm", "API_KEY", "--state", "state"], b"");
    assert_eq!(again.code(), 1, "{again}");
    let list = setup.run(&["secret", "list", "--state", "state"], b"");
    assert!(!list.stdout.contains("API_KEY"), "{list}");
    assert!(!setup.printed.contains(SECRET), "{}", setup.printed);
}

#[test]
fn a_missing_secret_or_key_stops_the_gateway_at_startup_with_names_only() {
    let mut setup = Setup::init();
    setup.configure(
        json!({"api": {
            "url": "http://127.0.0.1:9/mcp",
            "headers": {"Authorization": "Bearer ${secret:MISSING_KEY}"},
        }}),
        "allow api.*;\n",
    );
    let serve = |setup: &Setup, env: &[(&str, &str)]| {
        let mut cmd = Command::new(paths::mcpgate_bin());
        cmd.args(["serve", "--policy", "repo", "--listen", "127.0.0.1:0"])
            .args(["--state", "state"])
            .current_dir(setup.dir.path())
            .env_remove("MCPGATE_MASTER_KEY");
        for (k, v) in env {
            cmd.env(k, v);
        }
        process::run("mcpgate serve", &mut cmd, b"", Duration::from_secs(60))
    };
    let missing = serve(&setup, &[]);
    assert_eq!(missing.code(), 2, "{missing}");
    assert!(missing.stderr.contains("server `api`"), "{missing}");
    assert!(missing.stderr.contains("`MISSING_KEY`"), "{missing}");
    assert!(missing.stderr.contains("mcpgate secret set"), "{missing}");

    // Stored, but the key is gone: say so, and how to fix it.
    setup.set_secret("MISSING_KEY", SECRET);
    std::fs::rename(
        setup.path("state/master.key"),
        setup.path("master.key.backup"),
    )
    .unwrap();
    let keyless = serve(&setup, &[]);
    assert_eq!(keyless.code(), 2, "{keyless}");
    assert!(keyless.stderr.contains("no master key"), "{keyless}");
    assert!(keyless.stderr.contains("mcpgate init"), "{keyless}");

    // A key from the environment that is not the vault's.
    let wrong = serve(&setup, &[("MCPGATE_MASTER_KEY", &"ab".repeat(32))]);
    assert_eq!(wrong.code(), 2, "{wrong}");
    assert!(wrong.stderr.contains("does not open this vault"), "{wrong}");
    for out in [&missing, &keyless, &wrong] {
        assert!(!out.stdout.contains(SECRET) && !out.stderr.contains(SECRET));
    }
}

/// Builds the setup the next two tests share: a stored secret, an HTTP upstream that gets
/// it as a bearer header, a stdio upstream that gets it in its environment.
struct Brokered {
    setup: Setup,
    upstream: HttpPeer,
    http_record: PathBuf,
    stdio_record: PathBuf,
    token: String,
}

fn brokered() -> Brokered {
    let mut setup = Setup::init();
    setup.set_secret("API_KEY", SECRET);
    let token = setup.client_token();
    let http_record = setup.path("http-upstream.jsonl");
    let stdio_record = setup.path("stdio-upstream.jsonl");
    let upstream = HttpPeer::header_recorder(&http_record);
    let mut local = peers::header_recorder_stdio(&stdio_record);
    local["env"] = json!({"UPSTREAM_KEY": "${secret:API_KEY}"});
    setup.configure(
        json!({
            "rec": {
                "url": upstream.url,
                "headers": {"Authorization": "Bearer ${secret:API_KEY}"},
            },
            "local": local,
        }),
        "allow rec.whoami, rec.danger;\n\
         @id(\"no-danger\")\n\
         deny rec.danger when args.force == true because \"never through the gateway\";\n\
         allow local.env_digest, local.env_names;\n",
    );
    Brokered {
        setup,
        upstream,
        http_record,
        stdio_record,
        token,
    }
}

#[test]
fn the_upstream_gets_the_stored_credential_and_never_the_clients_token_or_a_denied_call() {
    let b = brokered();
    // A master key in the environment (the same key) must not reach a stdio server either.
    let key_b64 = {
        let key = std::fs::read(b.setup.path("state/master.key")).unwrap();
        key.iter().map(|x| format!("{x:02x}")).collect::<String>()
    };
    let gateway = b.setup.serve(&[
        ("MCPGATE_MASTER_KEY", &key_b64),
        ("MCPGATE_SECRET_UNRELATED", "env-secret-value"),
    ]);

    let rec = Client::connect(&gateway, "/mcp/rec", &b.token);
    let allowed = rec.call_tool(2, "whoami", json!({}));
    assert_eq!(text_of(&allowed), "ok", "{allowed}\n{}", gateway.log());
    let denied = rec.call_tool(3, "danger", json!({"force": true}));
    assert_eq!(denied["result"]["isError"], true, "{denied}");
    assert!(text_of(&denied).contains("no-danger"), "{denied}");

    let requests = peers::recorded(&b.http_record);
    let http: Vec<&Value> = requests
        .iter()
        .filter(|r| r.get("method").is_some())
        .collect();
    assert!(http.len() >= 2, "the upstream saw too little: {requests:?}");
    for request in &http {
        assert_eq!(
            request["headers"]["authorization"],
            format!("Bearer {SECRET}"),
            "every upstream request carries the brokered credential: {request}"
        );
        assert!(
            !request.to_string().contains(&b.token),
            "the client's token reached the upstream: {request}"
        );
    }
    let tools: Vec<&str> = requests.iter().filter_map(|r| r["tool"].as_str()).collect();
    assert_eq!(tools, ["whoami"], "{requests:?}");
    assert!(
        !http
            .iter()
            .any(|r| r["body"].as_str().unwrap_or("").contains("danger")),
        "the denied call reached the upstream: {requests:?}"
    );

    let local = Client::connect(&gateway, "/mcp/local", &b.token);
    let digest = local.call_tool(4, "env_digest", json!({"name": "UPSTREAM_KEY"}));
    let digest: Value = serde_json::from_str(&text_of(&digest)).unwrap();
    assert_eq!(digest["set"], true, "{digest}");
    assert_eq!(digest["sha256"], sha256_hex(SECRET), "{digest}");
    let names = local.call_tool(5, "env_names", json!({"prefix": "MCPGATE_"}));
    assert_eq!(text_of(&names), "[]", "gateway variables leaked: {names}");
    let stdio_tools: Vec<Value> = peers::recorded(&b.stdio_record)
        .into_iter()
        .map(|r| r["tool"].clone())
        .collect();
    assert_eq!(stdio_tools, [json!("env_digest"), json!("env_names")]);
    drop(b.upstream);
}

#[test]
fn a_whole_session_at_debug_level_prints_neither_the_secret_nor_the_token() {
    let mut b = brokered();
    let gateway = b.setup.serve(&[("RUST_LOG", "debug")]);
    let rec = Client::connect(&gateway, "/mcp/rec", &b.token);
    assert_eq!(text_of(&rec.call_tool(2, "whoami", json!({}))), "ok");
    assert_eq!(
        rec.call_tool(3, "danger", json!({"force": true}))["result"]["isError"],
        true
    );
    let local = Client::connect(&gateway, "/mcp/local", &b.token);
    let digest = local.call_tool(4, "env_digest", json!({"name": "UPSTREAM_KEY"}));
    assert!(text_of(&digest).contains("\"set\": true"), "{digest}");

    // A bad token, the status page and the metrics.
    let bad = http::request(
        gateway.addr(),
        "POST",
        "/mcp/rec",
        &[
            ("Content-Type", "application/json"),
            ("Accept", "application/json, text/event-stream"),
            ("Authorization", "Bearer not-a-valid-token-91xq"),
        ],
        initialize_request(1).to_string().as_bytes(),
    );
    let mut seen = bad.to_string();
    for path in ["/status", "/metrics"] {
        let page = http::request(gateway.addr(), "GET", path, &[], b"");
        assert_eq!(page.status, 200, "{path}: {page}");
        seen.push_str(&page.to_string());
    }
    // The CLI again, as an operator would use it while the gateway runs.
    let list = b.setup.run(&["secret", "list", "--state", "state"], b"");
    assert!(list.stdout.contains("API_KEY"), "{list}");

    let log = gateway.stop();
    assert!(
        log.contains("DEBUG"),
        "the gateway did not log at debug level:\n{log}"
    );
    seen.push_str(&log);
    seen.push_str(&b.setup.printed);
    for entry in walk(&b.setup.path("state")) {
        let name = entry.file_name().unwrap().to_string_lossy().into_owned();
        if !name.starts_with("state.db") {
            seen.push_str(&String::from_utf8_lossy(&std::fs::read(&entry).unwrap()));
        }
    }
    assert!(!seen.contains(SECRET), "the secret leaked:\n{seen}");
    assert!(!seen.contains(&b.token), "the client token leaked:\n{seen}");
    // The check above must be able to fail: the upstream really got the secret.
    let requests = std::fs::read_to_string(&b.http_record).unwrap();
    assert!(requests.contains(SECRET));
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[test]
fn rekeying_seals_every_secret_under_a_new_key_that_the_gateway_then_uses() {
    let mut setup = Setup::init();
    setup.set_secret("API_KEY", SECRET);
    setup.set_secret("OTHER", "other-value");
    let old_key = std::fs::read(setup.path("state/master.key")).unwrap();
    std::fs::write(setup.path("old.key"), &old_key).unwrap();

    let done = setup.run(&["secret", "rekey", "--state", "state"], b"");
    assert_eq!(done.code(), 0, "{done}");
    assert!(done.stdout.contains("sealed 2 secrets"), "{done}");
    let new_key = std::fs::read(setup.path("state/master.key")).unwrap();
    assert_eq!(new_key.len(), 32);
    assert_ne!(new_key, old_key);
    assert!(!setup.path("state/master.key.new").exists());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(setup.path("state/master.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    // The old key opens nothing any more.
    let old = mcpgate(
        setup.dir.path(),
        &["secret", "set", "NEW", "--state", "state"],
        b"v\n",
        &[(
            "MCPGATE_MASTER_KEY_FILE",
            setup.path("old.key").to_str().unwrap(),
        )],
    );
    assert_eq!(old.code(), 2, "{old}");
    assert!(old.stderr.contains("does not open this vault"), "{old}");

    // A key from the environment cannot be replaced in place.
    let hex: String = new_key.iter().map(|b| format!("{b:02x}")).collect();
    let env = mcpgate(
        setup.dir.path(),
        &["secret", "rekey", "--state", "state"],
        b"",
        &[("MCPGATE_MASTER_KEY", &hex)],
    );
    assert_eq!(env.code(), 2, "{env}");
    assert!(env.stderr.contains("--out"), "{env}");

    // The gateway decrypts with the new key and hands the same value to the upstream.
    let record = setup.path("stdio-upstream.jsonl");
    let mut local = peers::header_recorder_stdio(&record);
    local["env"] = json!({"UPSTREAM_KEY": "${secret:API_KEY}"});
    setup.configure(json!({"local": local}), "allow local.env_digest;\n");
    let gateway = setup.serve(&[]);
    let client = Client::connect(&gateway, "/mcp/local", CLIENT_TOKEN_FALLBACK);
    let digest = client.call_tool(2, "env_digest", json!({"name": "UPSTREAM_KEY"}));
    let digest: Value = serde_json::from_str(&text_of(&digest)).unwrap();
    assert_eq!(digest["sha256"], sha256_hex(SECRET), "{digest}");
    assert!(!setup.printed.contains(SECRET), "a value was printed");
}

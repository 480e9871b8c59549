//! TLS to the database, end to end: a certificate authority made here, a
//! throwaway PostgreSQL of our own that accepts TLS connections only, and
//! the real binary told to verify the server (`sslmode=verify-full`).
//!
//! Runs with the service-backed suite (`SWIFTDROP_TEST_DATABASE_URL`) and
//! needs PostgreSQL's server programs (`initdb`, `pg_ctl`, as Debian installs
//! them under /usr/lib/postgresql/*/bin); the shared server on 5432 is not
//! touched. As root the throwaway server runs as the `postgres` user
//! (PostgreSQL refuses to run as root).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, SanType};
use tempfile::TempDir;

/// The loopback address the throwaway server listens on (not 127.0.0.1,
/// to stay apart from the shared services).
const HOST: &str = "127.0.0.43";

/// A certificate authority and a server certificate it signed.
struct Pki {
    ca_pem: String,
    server_pem: String,
    server_key_pem: String,
}

fn authority(name: &str) -> (CertificateParams, KeyPair, String) {
    let key = KeyPair::generate().expect("CA key");
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    let pem = params.self_signed(&key).expect("CA certificate").pem();
    (params, key, pem)
}

/// A CA and a certificate it signed for `ip` (and `localhost`).
fn pki(ip: &str) -> Pki {
    let (ca_params, ca_key, ca_pem) = authority("SwiftDrop test CA");
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().expect("server key");
    let mut params = CertificateParams::new(vec!["localhost".to_owned()]).expect("server params");
    params
        .subject_alt_names
        .push(SanType::IpAddress(ip.parse().expect("IP")));
    params.distinguished_name.push(DnType::CommonName, ip);
    let server = params.signed_by(&key, &issuer).expect("server certificate");
    Pki {
        ca_pem,
        server_pem: server.pem(),
        server_key_pem: key.serialize_pem(),
    }
}

/// PostgreSQL's server programs, the newest installed.
fn postgres_bin() -> Option<PathBuf> {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .map(|entry| entry.path().join("bin"))
        .filter(|bin| bin.join("initdb").exists() && bin.join("pg_ctl").exists())
        .collect();
    versions.sort_by_key(|bin| {
        bin.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    });
    versions.pop()
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
}

/// A PostgreSQL server of this test's own: TLS only, stopped on drop.
struct ThrowawayPostgres {
    dir: TempDir,
    bin: PathBuf,
    as_postgres: bool,
    port: u16,
    /// The server's settings, for a restart.
    options: String,
}

impl ThrowawayPostgres {
    /// A program of PostgreSQL's, run as `postgres` when we are root.
    fn program(&self, name: &str) -> Command {
        let path = self.bin.join(name);
        if self.as_postgres {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(path);
            command
        } else {
            Command::new(path)
        }
    }

    fn run(&self, name: &str, args: &[&str]) {
        let output = self
            .program(name)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {name}: {e}"));
        assert!(
            output.status.success(),
            "{name} failed: {}{}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
            std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
        );
    }

    fn start(bin: PathBuf, pki: &Pki) -> ThrowawayPostgres {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = std::net::TcpListener::bind((HOST, 0))
            .and_then(|l| l.local_addr())
            .expect("a free port on 127.0.0.43")
            .port();
        let mut server = ThrowawayPostgres {
            dir,
            bin,
            as_postgres: is_root(),
            port,
            options: String::new(),
        };
        let path = |name: &str| server.dir.path().join(name);
        std::fs::write(path("server.crt"), &pki.server_pem).expect("write");
        std::fs::write(path("server.key"), &pki.server_key_pem).expect("write");
        set_mode(&path("server.key"), 0o600);
        if server.as_postgres {
            let chown = Command::new("chown")
                .args(["-R", "postgres:"])
                .arg(server.dir.path())
                .status()
                .expect("chown");
            assert!(chown.success(), "chown to postgres");
        }
        let data = path("data");
        server.run(
            "initdb",
            &[
                "-D",
                data.to_str().unwrap(),
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        );
        // TLS only: a plain TCP connection finds no pg_hba line.
        std::fs::write(
            data.join("pg_hba.conf"),
            "local all all trust\nhostssl all all 127.0.0.0/8 trust\n",
        )
        .expect("pg_hba.conf");
        server.options = format!(
            "-c listen_addresses={HOST} -c port={port} -c ssl=on -c ssl_cert_file={cert} \
             -c ssl_key_file={key} -c unix_socket_directories={dir} -c fsync=off",
            cert = path("server.crt").display(),
            key = path("server.key").display(),
            dir = server.dir.path().display(),
        );
        server.resume();
        server
    }

    /// Starts the (stopped) server.
    fn resume(&self) {
        let data = self.dir.path().join("data");
        let log = self.dir.path().join("server.log");
        self.run(
            "pg_ctl",
            &[
                "-D",
                data.to_str().unwrap(),
                "-l",
                log.to_str().unwrap(),
                "-w",
                "-t",
                "30",
                "-o",
                &self.options,
                "start",
            ],
        );
    }

    /// Stops the server at once, as a crash would.
    fn crash(&self) {
        let data = self.dir.path().join("data");
        self.run(
            "pg_ctl",
            &["-D", data.to_str().unwrap(), "-m", "immediate", "-w", "stop"],
        );
    }

    fn url(&self, query: &str) -> String {
        format!("postgres://postgres@{HOST}:{}/postgres?{query}", self.port)
    }
}

impl Drop for ThrowawayPostgres {
    fn drop(&mut self) {
        let data = self.dir.path().join("data");
        let _ = self
            .program("pg_ctl")
            .args(["-D", data.to_str().unwrap(), "-m", "immediate", "-w", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// The binary with only the settings given (and a fast bcrypt).
fn swiftdrop(data: &Path, database_url: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_swiftdrop"));
    command
        .env_clear()
        .env("SWIFTDROP_DATA_DIR", data)
        .env("SWIFTDROP_BCRYPT_COST", "4")
        .env("DATABASE_URL", database_url)
        .stdin(Stdio::null());
    command
}

/// Waits for a child to exit, at most `seconds`; kills it after that.
fn exit_within(child: &mut Child, seconds: u64) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().expect("wait") {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

/// `swiftdrop serve` on a free port, once it answers `/ready`.
struct Served {
    child: Child,
    addr: SocketAddr,
    client: reqwest::Client,
    log: PathBuf,
    ready: serde_json::Value,
}

impl Served {
    async fn start(mut command: Command, dir: &Path) -> Served {
        let addr: SocketAddr = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port");
        let log = dir.join(format!("serve-{}.log", addr.port()));
        let file = std::fs::File::create(&log).expect("log");
        let child = command
            .arg("serve")
            .env("SWIFTDROP_ADDR", addr.to_string())
            .stdout(file.try_clone().expect("log"))
            .stderr(file)
            .spawn()
            .expect("start serve");
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .expect("client");
        let mut served = Served {
            child,
            addr,
            client,
            log,
            ready: serde_json::Value::Null,
        };
        for _ in 0..300 {
            if let Ok(response) = served.client.get(format!("http://{addr}/ready")).send().await
                && response.status() == reqwest::StatusCode::OK
            {
                served.ready = response.json().await.expect("JSON");
                return served;
            }
            if served.child.try_wait().expect("wait").is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("serve never became ready:\n{}", served.log_text());
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM, and a clean exit.
    fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let stopped = exit_within(&mut self.child, 20);
        assert!(
            stopped.is_some_and(|s| s.success()),
            "serve stops cleanly: {stopped:?}"
        );
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn the_database_over_verified_tls_serves_and_a_wrong_ca_is_refused_at_start() {
    if crate::harness::postgres_url().is_none() {
        eprintln!(
            "SKIPPED the database TLS test: it runs with the PostgreSQL suite (set SWIFTDROP_TEST_DATABASE_URL)"
        );
        return;
    }
    let Some(bin) = postgres_bin() else {
        eprintln!(
            "SKIPPED the database TLS test: no PostgreSQL server programs under /usr/lib/postgresql/*/bin"
        );
        return;
    };
    let pki = pki(HOST);
    let server = ThrowawayPostgres::start(bin, &pki);
    let client_dir = tempfile::tempdir().expect("temp dir");
    let ca = client_dir.path().join("ca.crt");
    std::fs::write(&ca, &pki.ca_pem).expect("write");
    let (_, _, other_ca_pem) = authority("Some other CA");
    let wrong_ca = client_dir.path().join("wrong-ca.crt");
    std::fs::write(&wrong_ca, other_ca_pem).expect("write");
    let verified = server.url(&format!("sslmode=verify-full&sslrootcert={}", ca.display()));

    // Without TLS the server does not let us in at all.
    let plain = swiftdrop(client_dir.path(), &server.url("sslmode=disable"))
        .arg("migrate")
        .output()
        .expect("run migrate");
    assert!(!plain.status.success(), "a plain connection must be refused");

    // The right CA: the server's certificate is verified, host name included.
    let migrate = swiftdrop(client_dir.path(), &verified)
        .arg("migrate")
        .output()
        .expect("run migrate");
    assert!(
        migrate.status.success(),
        "migrate over verified TLS: {}",
        String::from_utf8_lossy(&migrate.stderr)
    );

    // ... and the server serves on it.
    let serve = Served::start(swiftdrop(client_dir.path(), &verified), client_dir.path()).await;
    let ready = serve.ready.clone();
    assert_eq!(ready["status"], "ok", "{ready}");
    assert_eq!(ready["checks"]["database"]["backend"], "postgres", "{ready}");
    let (addr, client) = (serve.addr, serve.client.clone());
    let registered = client
        .post(format!("http://{addr}/api/v1/auth/register"))
        .json(&serde_json::json!({"email": "tls@example.com", "username": "tls_user", "password": "Secret#123"}))
        .send()
        .await
        .expect("register");
    assert_eq!(registered.status(), reqwest::StatusCode::CREATED);
    // Every connection the server holds is encrypted (the server would let
    // no other in; this says so from its own side).
    {
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(&verified)
            .await
            .expect("the test connects over TLS too");
        let (connections, encrypted): (i64, i64) = sqlx::query_as(
            "SELECT count(*), count(*) FILTER (WHERE s.ssl) FROM pg_stat_activity a \
             JOIN pg_stat_ssl s USING (pid) WHERE a.backend_type = 'client backend'",
        )
        .fetch_one(&mut conn)
        .await
        .expect("pg_stat_ssl");
        assert!(connections >= 2, "the server's pool and the test: {connections}");
        assert_eq!(connections, encrypted);
    }

    // The database goes away: a request that needs it is told to come
    // back (503 with Retry-After) once no connection comes within the
    // pool's wait, /ready says the database is down, and all is well once
    // it is back.
    server.crash();
    let during = client
        .post(format!("http://{addr}/api/v1/auth/register"))
        .json(&serde_json::json!({"email": "late@example.com", "username": "late_user", "password": "Secret#123"}))
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .expect("an answer during the outage");
    assert_eq!(during.status(), reqwest::StatusCode::SERVICE_UNAVAILABLE);
    assert!(during.headers().contains_key("retry-after"));
    let ready = client
        .get(format!("http://{addr}/ready"))
        .send()
        .await
        .expect("ready");
    assert_eq!(ready.status(), reqwest::StatusCode::SERVICE_UNAVAILABLE);
    server.resume();
    let mut back = false;
    for _ in 0..100 {
        let ready = client
            .get(format!("http://{addr}/ready"))
            .send()
            .await
            .expect("ready");
        if ready.status() == reqwest::StatusCode::OK {
            back = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(back, "ready again once the database is back");
    let after = client
        .post(format!("http://{addr}/api/v1/auth/register"))
        .json(&serde_json::json!({"email": "late@example.com", "username": "late_user", "password": "Secret#123"}))
        .send()
        .await
        .expect("register");
    assert_eq!(after.status(), reqwest::StatusCode::CREATED);
    serve.stop();

    // The wrong CA: refused at start, saying what it could not do.
    let mut refused = swiftdrop(
        client_dir.path(),
        &server.url(&format!("sslmode=verify-full&sslrootcert={}", wrong_ca.display())),
    )
    .arg("serve")
    .env("SWIFTDROP_ADDR", "127.0.0.1:0")
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .expect("start serve");
    let status = exit_within(&mut refused, 30).expect("a server that cannot verify its database stops");
    assert!(!status.success());
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut refused.stderr.take().expect("stderr"), &mut stderr).expect("read");
    eprintln!("refused with a wrong CA:\n{stderr}");
    assert!(stderr.contains("DATABASE_URL"), "{stderr}");
    assert!(stderr.to_lowercase().contains("certificate"), "{stderr}");
}

/// A Redis of this test's own that speaks TLS only, killed on drop.
struct ThrowawayRedis {
    child: Child,
    port: u16,
    _dir: TempDir,
}

const REDIS_HOST: &str = "127.0.0.44";

impl ThrowawayRedis {
    fn start(pki: &Pki) -> Option<ThrowawayRedis> {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = |name: &str| dir.path().join(name);
        std::fs::write(path("server.crt"), &pki.server_pem).expect("write");
        std::fs::write(path("server.key"), &pki.server_key_pem).expect("write");
        std::fs::write(path("ca.crt"), &pki.ca_pem).expect("write");
        let port = std::net::TcpListener::bind((REDIS_HOST, 0))
            .and_then(|l| l.local_addr())
            .expect("a free port on 127.0.0.44")
            .port();
        let child = Command::new("redis-server")
            .args([
                "--port",
                "0",
                "--bind",
                REDIS_HOST,
                "--tls-port",
                &port.to_string(),
            ])
            .arg("--tls-cert-file")
            .arg(path("server.crt"))
            .arg("--tls-key-file")
            .arg(path("server.key"))
            .arg("--tls-ca-cert-file")
            .arg(path("ca.crt"))
            .args(["--tls-auth-clients", "no", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(dir.path())
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(path("redis.log")).expect("log"))
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let mut redis = ThrowawayRedis {
            child,
            port,
            _dir: dir,
        };
        for _ in 0..100 {
            if std::net::TcpStream::connect((REDIS_HOST, port)).is_ok() {
                return Some(redis);
            }
            if redis.child.try_wait().ok().flatten().is_some() {
                // Built without TLS, most likely.
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

impl Drop for ThrowawayRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn redis_over_verified_tls_serves_the_gates_and_a_wrong_ca_leaves_them_in_process() {
    if crate::harness::redis_url().is_none() {
        eprintln!("SKIPPED the Redis TLS test: it runs with the Redis suite (set SWIFTDROP_TEST_REDIS_URL)");
        return;
    }
    let pki = pki(REDIS_HOST);
    let Some(redis) = ThrowawayRedis::start(&pki) else {
        eprintln!("SKIPPED the Redis TLS test: redis-server is missing or cannot serve TLS (--tls-port)");
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let ca = dir.path().join("ca.crt");
    std::fs::write(&ca, &pki.ca_pem).expect("write");
    let (_, _, other_ca_pem) = authority("Some other CA");
    let wrong_ca = dir.path().join("wrong-ca.crt");
    std::fs::write(&wrong_ca, other_ca_pem).expect("write");
    let url = format!("rediss://{REDIS_HOST}:{}", redis.port);
    let with_ca = |ca: &Path| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_swiftdrop"));
        command
            .env_clear()
            .env("SWIFTDROP_DATA_DIR", dir.path())
            .env("SWIFTDROP_BCRYPT_COST", "4")
            .env("REDIS_URL", &url)
            .env("SWIFTDROP_REDIS_CA_FILE", ca)
            .stdin(Stdio::null());
        command
    };

    // The right CA: the gates run on Redis, over TLS.
    let served = Served::start(with_ca(&ca), dir.path()).await;
    assert_eq!(served.ready["status"], "ok", "{}", served.ready);
    assert_eq!(
        served.ready["checks"]["redis"]["status"], "ok",
        "{}",
        served.ready
    );
    served.stop();

    // A wrong CA: Redis is treated as unreachable (the process serves,
    // degraded, with its gates in-process) and the log says why.
    let served = Served::start(with_ca(&wrong_ca), dir.path()).await;
    assert_eq!(served.ready["status"], "degraded", "{}", served.ready);
    assert_eq!(
        served.ready["checks"]["redis"]["status"], "down",
        "{}",
        served.ready
    );
    let log = served.log_text();
    assert!(log.to_lowercase().contains("certificate"), "{log}");
    served.stop();

    // A CA file without a TLS URL is a mistake, refused at start by name.
    let refused = with_ca(&ca)
        .env("REDIS_URL", "redis://127.0.0.1:6379")
        .arg("migrate")
        .output()
        .expect("run");
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("SWIFTDROP_REDIS_CA_FILE"));
}

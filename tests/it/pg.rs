//! The PostgreSQL server the tests create their databases on: the one `CUSTORY_TEST_POSTGRES`
//! names, or else a throwaway one this test binary starts for itself from the installed server
//! binaries (Debian's `/usr/lib/postgresql/*/bin`, or `initdb` and `pg_ctl` on PATH): its own
//! data directory under the target dir, loopback only, a free port.
//!
//! It is stopped when the test binary ends, however it ends: a watchdog process holds the read
//! end of a pipe whose write end only this process has; when this process exits (even killed),
//! the kernel closes it, and the watchdog stops the server and removes its directory.
//!
//! Where no PostgreSQL is installed, the tests that need it fail with one line naming what to
//! install. They never skip.

use std::path::{Path, PathBuf};
use std::process::{ChildStdin, Command, Stdio};
use std::sync::OnceLock;

/// The URL of a PostgreSQL server on which the tests may create databases.
pub fn server_url() -> String {
    static SERVER: OnceLock<Result<Server, String>> = OnceLock::new();
    if let Ok(url) = std::env::var("CUSTORY_TEST_POSTGRES")
        && !url.is_empty()
    {
        return url;
    }
    match SERVER.get_or_init(Server::start) {
        Ok(server) => server.url.clone(),
        Err(why) => panic!("{why}"),
    }
}

/// A throwaway server, alive as long as `_watchdog` is (that is, as long as this process).
struct Server {
    url: String,
    port: u16,
    dir: PathBuf,
    _watchdog: ChildStdin,
}

/// A throwaway server with `ssl=on`, its certificate signed by a CA made for the tests and
/// naming `localhost` only: `(port, the CA's PEM file)`.
pub fn tls_server() -> (u16, PathBuf) {
    static SERVER: OnceLock<Result<(Server, u16, PathBuf), String>> = OnceLock::new();
    let made = SERVER.get_or_init(|| {
        let ca_key = rcgen::KeyPair::generate().map_err(|e| e.to_string())?;
        let mut ca_params =
            rcgen::CertificateParams::new(Vec::<String>::new()).map_err(|e| e.to_string())?;
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params.distinguished_name.push(rcgen::DnType::CommonName, "custory test CA");
        let ca_cert = ca_params.self_signed(&ca_key).map_err(|e| e.to_string())?;
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let key = rcgen::KeyPair::generate().map_err(|e| e.to_string())?;
        let params = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
            .map_err(|e| e.to_string())?;
        let cert = params.signed_by(&key, &issuer).map_err(|e| e.to_string())?;
        let server = Server::start_in("tls", Some((cert.pem(), key.serialize_pem())))?;
        let ca = server.dir.join("ca.pem");
        std::fs::write(&ca, ca_cert.pem()).map_err(|e| e.to_string())?;
        let port = server.port;
        Ok((server, port, ca))
    });
    match made {
        Ok((_, port, ca)) => (*port, ca.clone()),
        Err(why) => panic!("{why}"),
    }
}

impl Server {
    fn start() -> Result<Self, String> {
        Self::start_in("", None)
    }

    /// A server in its own directory (`tag` tells it apart), with TLS when `tls` gives a
    /// certificate and its key (PEM).
    fn start_in(tag: &str, tls: Option<(String, String)>) -> Result<Self, String> {
        let bin = binaries().ok_or(
            "the PostgreSQL tests need PostgreSQL's server programs: apt-get install postgresql \
             (or set CUSTORY_TEST_POSTGRES to the URL of a server where tests may create \
             databases)",
        )?;
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("custory-pg{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
        let owner = Owner::detect();
        owner.give(&dir)?;
        let data = dir.join("data");

        let mut initdb = owner.command(&bin.join("initdb"));
        initdb.arg("-D").arg(&data).args(["-A", "trust", "-U", "postgres", "-E", "UTF8"]);
        initdb.arg("--no-sync");
        if help_mentions(&bin.join("initdb"), "--locale-provider") {
            // A linguistic default collation, as .ci/postgres sets up: tests then see any
            // ordering that does not pin its own byte-wise collation.
            initdb.args(["--locale-provider=icu", "--icu-locale=en-US", "--locale=C.UTF-8"]);
        }
        run(initdb, "initdb")?;
        let mut ssl = String::new();
        if let Some((cert, key)) = &tls {
            use std::os::unix::fs::PermissionsExt as _;
            for (name, pem) in [("server.crt", cert), ("server.key", key)] {
                let path = data.join(name);
                std::fs::write(&path, pem).map_err(|e| format!("write {name}: {e}"))?;
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
                    .map_err(|e| e.to_string())?;
                owner.give(&path)?;
            }
            ssl = " -c ssl=on -c ssl_cert_file=server.crt -c ssl_key_file=server.key".to_owned();
        }

        // The watchdog first, so that even a failed start is cleaned up.
        let stop = owner.shell(&format!(
            "{} -D {} -m immediate -w stop",
            quote(&bin.join("pg_ctl")),
            quote(&data)
        ));
        let mut watchdog = Command::new("sh")
            .arg("-c")
            .arg(format!("cat >/dev/null; {stop} >/dev/null 2>&1; rm -rf {}", quote(&dir)))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("could not start the PostgreSQL watchdog: {e}"))?;
        let pipe = watchdog.stdin.take().ok_or("the watchdog has no stdin")?;

        let mut last = String::new();
        for _ in 0..5 {
            let port = free_port()?;
            let mut start = owner.command(&bin.join("pg_ctl"));
            start.arg("-D").arg(&data).arg("-l").arg(dir.join("server.log")).arg("-w");
            start.arg("-o").arg(format!(
                "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off \
                 -c max_connections=300{ssl}",
                dir.display()
            ));
            start.arg("start");
            match run(start, "pg_ctl start") {
                Ok(()) => {
                    let url = format!("postgres://postgres@127.0.0.1:{port}/postgres");
                    return Ok(Self { url, port, dir, _watchdog: pipe });
                }
                // Another process may have taken the port between the probe and the start.
                Err(why) => last = why,
            }
        }
        let log = std::fs::read_to_string(dir.join("server.log")).unwrap_or_default();
        Err(format!("could not start a throwaway PostgreSQL: {last}\n{log}"))
    }
}

/// The directory holding `initdb` and `pg_ctl`: the newest Debian version, else PATH.
fn binaries() -> Option<PathBuf> {
    let mut debian: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path().join("bin"))
        .filter(|bin| bin.join("initdb").is_file() && bin.join("pg_ctl").is_file())
        .collect();
    debian.sort_by_key(|bin| {
        bin.parent()
            .and_then(Path::file_name)
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
    });
    if let Some(newest) = debian.pop() {
        return Some(newest);
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .find(|dir| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file())
}

/// PostgreSQL refuses to run as root: as root, its programs run as the `postgres` user.
enum Owner {
    Me,
    Postgres,
}

impl Owner {
    fn detect() -> Self {
        let uid = Command::new("id").arg("-u").output().ok();
        let root = uid.is_some_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0");
        if root { Self::Postgres } else { Self::Me }
    }

    fn give(&self, dir: &Path) -> Result<(), String> {
        match self {
            Self::Me => Ok(()),
            Self::Postgres => {
                let mut chown = Command::new("chown");
                chown.arg("postgres").arg(dir);
                run(chown, "chown postgres")
            }
        }
    }

    fn command(&self, program: &Path) -> Command {
        match self {
            Self::Me => Command::new(program),
            Self::Postgres => {
                let mut command = Command::new("runuser");
                command.args(["-u", "postgres", "--"]).arg(program);
                command
            }
        }
    }

    fn shell(&self, line: &str) -> String {
        match self {
            Self::Me => line.to_owned(),
            Self::Postgres => format!("runuser -u postgres -- {line}"),
        }
    }
}

fn run(mut command: Command, what: &str) -> Result<(), String> {
    let output = command.output().map_err(|e| format!("{what}: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!("{what} failed: {}", String::from_utf8_lossy(&output.stderr).trim()))
    }
}

fn help_mentions(program: &Path, flag: &str) -> bool {
    Command::new(program)
        .arg("--help")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).contains(flag))
}

fn free_port() -> Result<u16, String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(listener.local_addr().map_err(|e| e.to_string())?.port())
}

fn quote(path: &Path) -> String {
    format!("'{}'", path.display().to_string().replace('\'', r"'\''"))
}

//! `serve --tls-cert --tls-key`: HTTPS without a proxy. The CLI reaches it with `--ca-cert`
//! for a private CA, rmcp (an MCP client nobody here wrote) lists the tools over it, and a
//! renewed certificate takes effect at SIGHUP without a restart.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rmcp::ServiceExt as _;
use rmcp::model::{ClientCapabilities, ClientConfig, Implementation, ProtocolVersion};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use tokio_rustls::rustls;

use crate::common::{TestEnv, run_piped};

/// A CA, and certificates for `localhost` it signs.
struct Ca {
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    pem: String,
}

impl Ca {
    fn new() -> Self {
        let key = rcgen::KeyPair::generate().expect("key");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.distinguished_name.push(rcgen::DnType::CommonName, "custory https test CA");
        let pem = params.self_signed(&key).expect("CA").pem();
        Self { issuer: rcgen::Issuer::new(params, key), pem }
    }

    /// Writes a new certificate for localhost and its key into `dir`; returns its DER.
    fn issue(&self, dir: &Path) -> Vec<u8> {
        let key = rcgen::KeyPair::generate().expect("key");
        let params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).expect("params");
        let cert = params.signed_by(&key, &self.issuer).expect("certificate");
        std::fs::write(dir.join("cert.pem"), cert.pem()).expect("cert");
        std::fs::write(dir.join("key.pem"), key.serialize_pem()).expect("key");
        cert.der().to_vec()
    }
}

/// The certificate the server shows a new connection.
async fn served_certificate(port: u16, ca: &Path) -> Vec<u8> {
    use rustls::pki_types::pem::PemObject as _;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_file_iter(ca).expect("ca") {
        roots.add(cert.expect("pem")).expect("root");
    }
    let config =
        rustls::ClientConfig::builder().with_root_certificates(roots).with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.expect("connect");
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
    let tls = connector.connect(name, tcp).await.expect("handshake");
    tls.get_ref().1.peer_certificates().expect("certificates")[0].to_vec()
}

#[tokio::test]
async fn https_serves_the_cli_and_an_mcp_client_and_reloads_its_certificate_on_sighup() {
    use tokio::io::AsyncBufReadExt as _;
    let env = TestEnv::new();
    let dir: PathBuf = env.home.path().to_owned();
    let ca = Ca::new();
    let ca_file = dir.join("ca.pem");
    std::fs::write(&ca_file, &ca.pem).expect("ca file");
    let first = ca.issue(&dir);
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let mut server = env
        .serve(
            &dir.join("custory.db"),
            &[
                "-v",
                "--tls-cert",
                cert.to_str().expect("path"),
                "--tls-key",
                key.to_str().expect("path"),
            ],
        )
        .await;
    let url = server.url();
    assert!(url.starts_with("https://localhost:"), "{url}");
    let port: u16 = url.rsplit(':').next().expect("port").parse().expect("port");

    // The CLI: trusted with --ca-cert, refused without it.
    let cli = |args: &[&str], ca: bool| {
        let mut cmd = env.command();
        cmd.env("CUSTORY_SERVER", &url);
        if ca {
            cmd.arg("--ca-cert").arg(&ca_file);
        }
        cmd.args(args);
        async move { run_piped(cmd, None).await }
    };
    let created = cli(&["keys", "create", "--name", "over https", "--expires", "30d"], true).await;
    assert_eq!(created.code, 0, "{}", created.stderr);
    let token = created.stdout.trim().to_owned();
    let untrusted = cli(&["keys", "list"], false).await;
    assert_eq!(untrusted.code, 1);
    assert!(untrusted.stderr.to_lowercase().contains("certificate"), "{}", untrusted.stderr);
    let mut test = env.command();
    test.env("CUSTORY_MCP_TOKEN", &token)
        .args(["test", "--server", &url, "--ca-cert"])
        .arg(&ca_file);
    let tested = run_piped(test, None).await;
    assert_eq!(tested.code, 0, "{}", tested.stderr);
    assert!(tested.stderr.contains("over TLS"), "{}", tested.stderr);

    // rmcp over the same HTTPS, trusting the CA.
    let http = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(ca.pem.as_bytes()).expect("ca"))
        .build()
        .expect("client");
    let config = StreamableHttpClientTransportConfig::with_uri(format!("{url}/api/mcp"))
        .auth_header(token.clone());
    let client =
        ClientConfig::new(ClientCapabilities::default(), Implementation::new("rmcp-https", "3"))
            .with_protocol_version(ProtocolVersion::V_2025_11_25)
            .serve(StreamableHttpClientTransport::with_client(http, config))
            .await
            .expect("rmcp connects over https");
    let tools = client.list_all_tools().await.expect("tools");
    assert_eq!(tools.len(), 24);
    client.cancel().await.expect("close");

    // A renewed certificate, then SIGHUP: new connections get it, without a restart.
    assert_eq!(served_certificate(port, &ca_file).await, first);
    let renewed = ca.issue(&dir);
    assert_ne!(renewed, first);
    let mut log = tokio::io::BufReader::new(server.child.stderr.take().expect("stderr")).lines();
    let mut logged = async |what: &str| {
        let wait = async {
            while let Some(line) = log.next_line().await.expect("log") {
                if line.contains(what) {
                    return line;
                }
            }
            panic!("the server stopped without logging {what:?}");
        };
        tokio::time::timeout(std::time::Duration::from_secs(30), wait)
            .await
            .unwrap_or_else(|_| panic!("the server did not log {what:?} within 30 s"))
    };
    let pid = server.child.id().expect("pid").to_string();
    let hangup = || {
        let status = std::process::Command::new("kill").args(["-HUP", &pid]).status();
        assert!(status.expect("kill").success());
    };
    hangup();
    logged("reloaded the TLS certificate").await;
    assert_eq!(served_certificate(port, &ca_file).await, renewed);
    // A broken renewal is logged, and the running certificate kept.
    std::fs::write(&cert, "not a certificate").expect("break");
    hangup();
    let line = logged("could not reload the TLS certificate").await;
    assert!(line.contains("holds no PEM certificate"), "{line}");
    assert_eq!(served_certificate(port, &ca_file).await, renewed);
    server.terminate().await;

    // A certificate that does not load stops serve before it listens.
    let bad = env
        .command()
        .args(["serve", "--listen", "127.0.0.1:0", "--tls-cert"])
        .arg(&cert)
        .arg("--tls-key")
        .arg(&key)
        .output()
        .await
        .expect("serve");
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("holds no PEM certificate"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
}

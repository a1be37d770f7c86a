//! TLS to PostgreSQL, with rustls, as libpq's `sslmode` has it: `disable` and `prefer` (the
//! default) connect in the clear; `require` encrypts (and checks the certificate against
//! `sslrootcert` when one is named, as libpq does); `verify-ca` checks the chain against
//! `sslrootcert` (else the system's roots); `verify-full` checks the host name too.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, Error, RootCertStore, SignatureScheme};
use tokio_postgres_rustls::MakeRustlsConnect;

/// How connections to one database are made.
#[derive(Clone)]
pub enum PgTls {
    Plain,
    Rustls(MakeRustlsConnect),
}

impl std::fmt::Debug for PgTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Plain => "PgTls::Plain",
            Self::Rustls(_) => "PgTls::Rustls",
        })
    }
}

/// The connection settings and TLS of a PostgreSQL URL (or `key=value` string). `sslmode` and
/// `sslrootcert` are read here: the driver knows neither `verify-ca` nor `verify-full`.
pub fn parse(database: &str) -> Result<(postgres::Config, PgTls), String> {
    let (rest, mode, root) = take_tls_settings(database);
    let mut config = rest.parse::<postgres::Config>().map_err(|e| e.to_string())?;
    let mode = mode.as_deref().unwrap_or("prefer");
    let roots = || -> Result<RootCertStore, String> {
        let mut store = RootCertStore::empty();
        match root.as_deref() {
            Some("system") | None => {
                let found = rustls_native_certs::load_native_certs();
                for cert in found.certs {
                    let _ = store.add(cert);
                }
            }
            Some(path) => {
                let certs = CertificateDer::pem_file_iter(path)
                    .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                    .map_err(|e| format!("could not read sslrootcert={path}: {e}"))?;
                for cert in certs {
                    store.add(cert).map_err(|e| format!("sslrootcert={path}: {e}"))?;
                }
            }
        }
        if store.is_empty() {
            return Err(format!(
                "sslmode={mode} needs CA certificates to check the server's against: name a PEM \
                 file with sslrootcert=PATH"
            ));
        }
        Ok(store)
    };
    let verifier: Arc<dyn ServerCertVerifier> = match mode {
        "disable" | "allow" | "prefer" => {
            config.ssl_mode(postgres::config::SslMode::Disable);
            return Ok((config, PgTls::Plain));
        }
        "require" if root.is_none() => Arc::new(EncryptOnly(provider())),
        "require" | "verify-ca" => Arc::new(ChainOnly(web_verifier(roots()?)?)),
        "verify-full" => web_verifier(roots()?)?,
        other => {
            return Err(format!(
                "sslmode={other} is not one of disable, prefer, require, verify-ca, verify-full"
            ));
        }
    };
    config.ssl_mode(postgres::config::SslMode::Require);
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok((config, PgTls::Rustls(MakeRustlsConnect::new(tls))))
}

fn provider() -> rustls::crypto::CryptoProvider {
    rustls::crypto::aws_lc_rs::default_provider()
}

fn web_verifier(roots: RootCertStore) -> Result<Arc<rustls::client::WebPkiServerVerifier>, String> {
    rustls::client::WebPkiServerVerifier::builder_with_provider(
        Arc::new(roots),
        Arc::new(provider()),
    )
    .build()
    .map_err(|e| e.to_string())
}

/// `database` without `sslmode` and `sslrootcert`, and their values.
fn take_tls_settings(database: &str) -> (String, Option<String>, Option<String>) {
    let (mut mode, mut root) = (None, None);
    let mut keep = |name: &str, value: &str| match name {
        "sslmode" => {
            mode = Some(value.to_owned());
            false
        }
        "sslrootcert" => {
            root = Some(value.to_owned());
            false
        }
        _ => true,
    };
    if database.starts_with("postgres://") || database.starts_with("postgresql://") {
        let Some((base, query)) = database.split_once('?') else {
            return (database.to_owned(), None, None);
        };
        let kept: Vec<&str> = query
            .split('&')
            .filter(|pair| {
                let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
                let value = url::form_urlencoded::parse(format!("v={value}").as_bytes())
                    .next()
                    .map(|(_, v)| v.into_owned())
                    .unwrap_or_default();
                keep(name, &value)
            })
            .collect();
        let rest =
            if kept.is_empty() { base.to_owned() } else { format!("{base}?{}", kept.join("&")) };
        (rest, mode, root)
    } else {
        let kept: Vec<&str> = database
            .split_whitespace()
            .filter(|word| {
                let (name, value) = word.split_once('=').unwrap_or((word, ""));
                keep(name, value.trim_matches('\''))
            })
            .collect();
        (kept.join(" "), mode, root)
    }
}

/// `verify-ca`: the chain must lead to a trusted root; the name in the certificate is not
/// compared with the host.
#[derive(Debug)]
struct ChainOnly(Arc<rustls::client::WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        match self.0.verify_server_cert(end_entity, intermediates, server_name, ocsp, now) {
            Err(Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// `require` without a CA: encrypted, the certificate not checked (libpq's meaning); the
/// handshake's signatures still are.
#[derive(Debug)]
struct EncryptOnly(rustls::crypto::CryptoProvider);

impl ServerCertVerifier for EncryptOnly {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_settings_are_taken_out_of_urls_and_key_value_strings() {
        let (rest, mode, root) = take_tls_settings(
            "postgres://u:p@h:5/d?sslmode=verify-full&sslrootcert=%2Ftmp%2Fca.pem&application_name=x",
        );
        assert_eq!(rest, "postgres://u:p@h:5/d?application_name=x");
        assert_eq!((mode.as_deref(), root.as_deref()), (Some("verify-full"), Some("/tmp/ca.pem")));
        let (rest, mode, _) = take_tls_settings("host=h dbname=d sslmode=require");
        assert_eq!((rest.as_str(), mode.as_deref()), ("host=h dbname=d", Some("require")));
        assert!(matches!(parse("postgres://h/d").expect("plain").1, PgTls::Plain));
        assert!(matches!(
            parse("postgres://h/d?sslmode=require").expect("tls").1,
            PgTls::Rustls(_)
        ));
        assert!(parse("postgres://h/d?sslmode=sometimes").is_err());
        assert!(parse("postgres://h/d?sslmode=verify-full&sslrootcert=/nonexistent").is_err());
    }
}

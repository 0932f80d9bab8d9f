//! TLS on both sides: the certificate the embedded broker's amqps listener presents, and the
//! certificates rabbitscope's own clients (amqps, https) trust beyond the system's.
//!
//! rustls with the aws-lc-rs provider, the one the HTTP client already brings.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use tokio_rustls::rustls;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Why a certificate or key cannot be used. Each names the file at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read certificates (PEM) from {}: {why}", .path.display())]
    Certificates { path: PathBuf, why: String },
    #[error("cannot read a private key (PEM) from {}: {why}", .path.display())]
    Key { path: PathBuf, why: String },
    #[error("the certificate in {} does not go with the key in {}: {why}", .cert.display(), .key.display())]
    Mismatch {
        cert: PathBuf,
        key: PathBuf,
        why: String,
    },
    /// rustls refused its own default protocol versions: a build without them.
    #[error("{0}")]
    Versions(String),
    #[error("cannot read {}: {why}", .path.display())]
    Unreadable { path: PathBuf, why: String },
    #[error("a CA certificate file was already given")]
    AlreadyTrusted,
}

/// The broker's side: a certificate chain and its private key, both PEM. Errors name the file
/// at fault.
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let certs = read_certificates(cert)?;
    let key_file = key;
    let key = PrivateKeyDer::from_pem_file(key_file).map_err(|e| TlsError::Key {
        path: key_file.to_path_buf(),
        why: pem_error(e),
    })?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Versions(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| TlsError::Mismatch {
            cert: cert.to_path_buf(),
            key: key_file.to_path_buf(),
            why: e.to_string(),
        })?;
    Ok(Arc::new(config))
}

/// Every certificate in a PEM file; an error if there is none.
fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let cannot = |why: String| TlsError::Certificates {
        path: path.to_path_buf(),
        why,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| cannot(pem_error(e)))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| cannot(pem_error(e)))?;
    if certs.is_empty() {
        return Err(cannot("no BEGIN CERTIFICATE block in it".into()));
    }
    Ok(certs)
}

/// rustls' PEM errors, with "nothing found" in words a user can act on.
fn pem_error(e: rustls::pki_types::pem::Error) -> String {
    use rustls::pki_types::pem::Error;
    match e {
        Error::Io(e) => e.to_string(),
        Error::NoItemsFound => "no PEM block of that kind in it".into(),
        other => other.to_string(),
    }
}

/// CA certificates (PEM) trusted by this process's clients besides the system's.
static EXTRA_ROOTS: OnceLock<String> = OnceLock::new();

/// Trusts the CA certificates in `path` (PEM) for every amqps and https connection this
/// process opens from now on, as well as the system's (and `SSL_CERT_FILE`'s). The file is
/// read and checked here, so a bad one fails at start, named. Once per process.
pub fn trust_ca_file(path: &Path) -> Result<(), TlsError> {
    read_certificates(path)?;
    let pem = std::fs::read_to_string(path).map_err(|e| TlsError::Unreadable {
        path: path.to_path_buf(),
        why: e.to_string(),
    })?;
    EXTRA_ROOTS.set(pem).map_err(|_| TlsError::AlreadyTrusted)
}

/// The CA certificates given to [`trust_ca_file`], PEM.
pub fn extra_roots() -> Option<&'static str> {
    EXTRA_ROOTS.get().map(String::as_str)
}

/// What lapin needs for amqps URLs: the extra roots, if any (amqp URLs ignore it).
pub fn client_config() -> lapin::tcp::OwnedTLSConfig {
    lapin::tcp::OwnedTLSConfig {
        identity: None,
        cert_chain: extra_roots().map(str::to_string),
    }
}

/// Opens an AMQP connection, over TLS when the URL is amqps. Every lapin connection of
/// rabbitscope goes through here (or [`connect_uri`]), so all trust `--ca-cert`.
pub async fn connect(
    url: &str,
    properties: lapin::ConnectionProperties,
) -> lapin::Result<lapin::Connection> {
    use lapin::Connect;
    let runtime = lapin::runtime::default_runtime()?;
    url.connect_with_config(properties, client_config(), runtime)
        .await
}

/// [`connect`] with a parsed URL.
pub async fn connect_uri(
    uri: lapin::uri::AMQPUri,
    properties: lapin::ConnectionProperties,
) -> lapin::Result<lapin::Connection> {
    let runtime = lapin::runtime::default_runtime()?;
    lapin::Connection::connect_uri_with_config(uri, properties, client_config(), runtime).await
}

/// A TLS connector for rabbitscope's own raw connections (the embedded-broker probe): the
/// system's certificates (or `SSL_CERT_FILE`'s) and [`trust_ca_file`]'s, as lapin trusts.
pub fn client_connector() -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    if let Some(pem) = extra_roots() {
        roots.add_parsable_certificates(
            CertificateDer::pem_slice_iter(pem.as_bytes()).filter_map(Result::ok),
        );
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("the provider supports the default versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

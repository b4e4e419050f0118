//! TLS: our server with a certificate from a test CA; the client verifies it through certs.d
//! (`ca.crt`, plus `client.cert`/`client.key`), refuses it without, and skips verification for
//! insecure registries.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};

use common::*;
use wharf_registry::client::{Access, AuthConfig, Client, RegistryConfig};
use wharf_registry::server::AuthMode;
use wharf_types::{Classify, ErrorKind, Platform, Reference};

fn openssl(dir: &Path, args: &[&str]) {
    let ok = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .success();
    assert!(ok, "openssl {args:?}");
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate, all signed by the CA.
fn make_pki(dir: &Path) {
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    let mut a = vec!["req", "-x509"];
    a.extend(ec);
    a.extend(["-subj", "/CN=wharf test CA", "-days", "1", "-keyout", "ca.key", "-out", "ca.crt"]);
    openssl(dir, &a);
    std::fs::write(
        dir.join("srv.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    std::fs::write(dir.join("cli.ext"), "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n").unwrap();
    for (name, ext) in [("srv", "srv.ext"), ("client", "cli.ext")] {
        let key = format!("{name}.key");
        let csr = format!("{name}.csr");
        let crt = format!("{name}.crt");
        let mut a = vec!["req"];
        a.extend(ec);
        a.extend(["-subj", "/CN=127.0.0.1", "-keyout", &key, "-out", &csr]);
        openssl(dir, &a);
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "1",
                "-extfile",
                ext,
                "-out",
                &crt,
            ],
        );
    }
}

fn strict(certs_dir: &Path) -> Client {
    Client::new(RegistryConfig {
        insecure_registries: Vec::new(),
        certs_dir: certs_dir.to_owned(),
        ..Default::default()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certs_d_ca_and_client_certificate() {
    require_tool!("openssl");
    let pki = tempfile::tempdir().unwrap();
    make_pki(pki.path());
    let tls = wharf_registry::server::tls_config(&pki.path().join("srv.crt"), &pki.path().join("srv.key")).unwrap();
    let srv = TestServer::start_tls(AuthMode::None, None, Some(tls)).await;
    let host = srv.host();
    let r: Reference = format!("{host}/tls/app").parse().unwrap();

    // Not insecure and no CA: refused, and no fallback to HTTP.
    let empty = tempfile::tempdir().unwrap();
    let err = match strict(empty.path()).repository(&r, &AuthConfig::default(), Access::Push).await {
        Err(e) => e,
        Ok(_) => panic!("an unknown CA was accepted"),
    };
    assert_eq!(
        err.to_string(),
        format!(
            "Get \"https://{host}/v2/\": tls: failed to verify certificate: x509: certificate signed by unknown authority"
        )
    );
    assert_eq!(err.kind(), ErrorKind::Internal);

    // certs.d/<host:port>/ with the CA and a client certificate: verified.
    let certs = tempfile::tempdir().unwrap();
    let d = certs.path().join(&host);
    std::fs::create_dir_all(&d).unwrap();
    std::fs::copy(pki.path().join("ca.crt"), d.join("ca.crt")).unwrap();
    std::fs::copy(pki.path().join("client.crt"), d.join("client.cert")).unwrap();
    std::fs::copy(pki.path().join("client.key"), d.join("client.key")).unwrap();
    let c = strict(certs.path());
    let repo = c.repository(&r, &AuthConfig::default(), Access::Push).await.unwrap();
    assert!(repo.endpoint().is_https());
    let img = TestImage::generate(110, &[20_000], "amd64");
    push_image(&repo, &img, "v1", &Default::default()).await;
    let got = repo.fetch_image("v1", &Platform::host()).await.unwrap();
    assert_eq!(got.digest, img.manifest_digest);

    // The default (loopback is insecure): HTTPS without verification.
    let repo = client().repository(&r, &AuthConfig::default(), Access::Pull).await.unwrap();
    assert!(repo.endpoint().is_https());
    assert_eq!(read_blob(&repo, &img.layers[0].0).await.unwrap(), img.layers[0].1.to_vec());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_registry_needs_insecure() {
    let srv = TestServer::start(AuthMode::None, None).await;
    let host = srv.host();
    let r: Reference = format!("{host}/p/app").parse().unwrap();
    let empty = tempfile::tempdir().unwrap();
    let err = match strict(empty.path()).repository(&r, &AuthConfig::default(), Access::Pull).await {
        Err(e) => e,
        Ok(_) => panic!("plain HTTP was used for a secure registry"),
    };
    assert_eq!(err.to_string(), format!("Get \"https://{host}/v2/\": http: server gave HTTP response to HTTPS client"));
}

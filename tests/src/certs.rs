//! Certificates made by the test: a private CA and a server certificate it signs, for TLS
//! peers and stores the gateway must trust through a `ca_file`.

use std::path::{Path, PathBuf};

/// A CA made here, and a certificate it signs for `names` (DNS names or IP addresses):
/// (CA PEM, cert PEM, key PEM).
pub fn private_ca_for(names: &[&str]) -> (String, String, String) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "mcpgate test company CA");
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().unwrap();
    let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
    let leaf = CertificateParams::new(names)
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    (ca_cert.pem(), leaf.pem(), key.serialize_pem())
}

/// [`private_ca_for`] `localhost` and `127.0.0.1`.
pub fn private_ca() -> (String, String, String) {
    private_ca_for(&["localhost", "127.0.0.1"])
}

/// The three PEM files of a private CA and its server certificate, in a folder of their
/// own (removed on drop).
pub struct CertFiles {
    dir: tempfile::TempDir,
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl CertFiles {
    /// Files for a server certificate naming `names`.
    pub fn for_names(names: &[&str]) -> CertFiles {
        let dir = tempfile::tempdir().unwrap();
        let (ca, cert, key) = private_ca_for(names);
        let write = |name: &str, text: &str| -> PathBuf {
            let p = dir.path().join(name);
            std::fs::write(&p, text).unwrap();
            p
        };
        CertFiles {
            ca: write("ca.pem", &ca),
            cert: write("cert.pem", &cert),
            key: write("key.pem", &key),
            dir,
        }
    }

    /// Files for `localhost` and `127.0.0.1`.
    pub fn localhost() -> CertFiles {
        CertFiles::for_names(&["localhost", "127.0.0.1"])
    }

    /// The folder holding the files.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

//! TLS set-up. reqwest is built with rustls but without a bundled crypto provider so that the
//! small, fast-building `ring` backend is used instead of aws-lc; the provider must then be
//! installed once per process before the first client is built.

pub fn install_crypto_provider() {
    // Err means a provider is installed already (by us or by the embedding program): fine.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

//! Where the token may go: the API's base URL as configured, checked once, and the origin that
//! every request (redirects included) must stay on.
//!
//! One check serves both the config loader (`[api] base_url`, reported with its key) and the
//! client (`--api-url`, `POPSEL_API_URL`, library callers), so the two cannot disagree.

use std::net::IpAddr;

use reqwest::Url;

/// What replaces credentials when a URL is shown.
const HIDDEN: &str = "(credentials)";

/// Why a base URL is refused, in words that say what to change. Never quotes the URL, so that
/// callers choose how to show it ([`shown_url`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BaseUrlProblem {
    #[error("{0}")]
    Unparsable(String),
    #[error("the scheme must be http or https")]
    Scheme,
    #[error(
        "it carries a user name or password (user:password@); remove it: popsel authenticates with the API token only (POPSEL_API_TOKEN or a token file)"
    )]
    Credentials,
    #[error(
        "plain http to {host}, which is not this machine, would send the API token unencrypted; use https://, or set [api] allow_insecure_http = true if the path to it is trusted"
    )]
    InsecureHttp { host: String },
}

/// `text` as a base URL the client may send the token to: http or https, a host, no user
/// name or password, and https unless the host is this machine (loopback) or
/// `allow_insecure_http` says that plain http is wanted.
pub fn check_base_url(text: &str, allow_insecure_http: bool) -> Result<Url, BaseUrlProblem> {
    let url = Url::parse(text.trim()).map_err(|e| BaseUrlProblem::Unparsable(e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") || url.cannot_be_a_base() {
        return Err(BaseUrlProblem::Scheme);
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(BaseUrlProblem::Credentials);
    }
    let Some(host) = url.host_str().filter(|h| !h.is_empty()) else {
        return Err(BaseUrlProblem::Unparsable("no host".into()));
    };
    if url.scheme() == "http" && !allow_insecure_http && !is_loopback(host) {
        return Err(BaseUrlProblem::InsecureHttp {
            host: host.to_owned(),
        });
    }
    Ok(url)
}

/// This machine: `localhost` or a loopback address (IPv4-mapped ones included). Other names
/// are not trusted to resolve to loopback, whatever they look like.
/// `host` is as the URL parser wrote it: lower case, IPv6 in brackets.
fn is_loopback(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    match bare.parse::<IpAddr>() {
        Ok(IpAddr::V4(ip)) => ip.is_loopback(),
        Ok(IpAddr::V6(ip)) => {
            ip.is_loopback() || ip.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
        Err(_) => host.eq_ignore_ascii_case("localhost"),
    }
}

/// A URL as it may be shown in errors, logs and `Debug`: without user name or password, even
/// when it does not parse (then everything between `://` and the last `@` is hidden).
pub fn shown_url(text: &str) -> String {
    if let Ok(mut url) = Url::parse(text.trim()) {
        if url.cannot_be_a_base() {
            return hide_before_at(text);
        }
        if !url.username().is_empty() || url.password().is_some() {
            // Only fails for URLs that cannot have credentials in the first place.
            let _ = url.set_username("");
            let _ = url.set_password(None);
        }
        return url.to_string();
    }
    hide_before_at(text)
}

/// Everything between `://` (or the start) and the last `@` hidden.
fn hide_before_at(text: &str) -> String {
    match (text.find("://"), text.rfind('@')) {
        (Some(start), Some(at)) if at > start => {
            format!("{}{HIDDEN}{}", &text[..start + 3], &text[at..])
        }
        (None, Some(at)) => format!("{HIDDEN}{}", &text[at..]),
        _ => text.to_owned(),
    }
}

/// Whether `a` and `b` share scheme, host and port: where the token may follow a redirect.
pub fn same_origin(a: &Url, b: &Url) -> bool {
    a.origin() == b.origin()
}

/// `scheme://host:port` of `url`, never its credentials, path or query; for a URL with no
/// such origin (`file:`, `data:`), its scheme.
pub fn origin_of(url: &Url) -> String {
    let origin = url.origin();
    if origin.is_tuple() {
        origin.ascii_serialization()
    } else {
        format!("a {}: URL", url.scheme())
    }
}

#[cfg(test)]
#[path = "origin_tests.rs"]
mod tests;

//! libpq's TLS parameters in a connection string: `sslmode` and
//! `sslrootcert`, in the URL form (`?sslmode=require`) and the key=value form
//! (`sslmode=require`). They are taken out of the string before tokio-postgres
//! parses it, because tokio-postgres knows only disable/prefer/require and
//! refuses `sslrootcert` as an unknown option.

use std::fmt;
use std::path::PathBuf;

/// libpq's `sslmode`. The default is libpq's: `prefer`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum SslMode {
    /// Plaintext only.
    Disable,
    /// TLS when the server offers it, else plaintext; the certificate is not
    /// verified (libpq would check it against a given `sslrootcert`, but the
    /// replication connection cannot: both connections behave alike).
    #[default]
    Prefer,
    /// TLS or fail; the certificate is not verified unless `sslrootcert` is
    /// given (then as `verify-ca`, like libpq).
    Require,
    /// TLS, and the certificate must chain to a trusted CA.
    VerifyCa,
    /// As `verify-ca`, and the certificate must name the host connected to.
    VerifyFull,
}

impl SslMode {
    fn parse(value: &str) -> Result<SslMode, String> {
        match value {
            "disable" => Ok(SslMode::Disable),
            "prefer" => Ok(SslMode::Prefer),
            "require" => Ok(SslMode::Require),
            "verify-ca" => Ok(SslMode::VerifyCa),
            "verify-full" => Ok(SslMode::VerifyFull),
            "allow" => Err(
                "sslmode=allow is not supported: use prefer (TLS when the server \
                            offers it) or disable"
                    .into(),
            ),
            other => Err(format!(
                "sslmode={other:?} is not a mode: use disable, prefer, require, verify-ca or \
                 verify-full"
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

impl fmt::Display for SslMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The TLS half of `DATABASE_URL`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsSettings {
    pub mode: SslMode,
    /// `sslrootcert`: a PEM file of CA certificates. `None` (or
    /// `sslrootcert=system`) means Mozilla's list of public CAs, built in.
    pub root_cert: Option<PathBuf>,
}

impl TlsSettings {
    /// Whether the certificate chain is checked: verify-ca and verify-full,
    /// and (as libpq does) require when a root certificate is given.
    pub fn verifies_chain(&self) -> bool {
        match self.mode {
            SslMode::Disable | SslMode::Prefer => false,
            SslMode::Require => self.root_cert.is_some(),
            SslMode::VerifyCa | SslMode::VerifyFull => true,
        }
    }

    pub fn verifies_host(&self) -> bool {
        self.mode == SslMode::VerifyFull
    }

    /// Where trusted CAs come from, for messages.
    pub fn roots_description(&self) -> String {
        match &self.root_cert {
            Some(path) => format!("the CA certificates in sslrootcert={}", path.display()),
            None => "the public CAs built into the bridge (no sslrootcert given)".to_owned(),
        }
    }
}

/// Parameters we recognise but do not implement: a clear refusal instead of
/// tokio-postgres' "unknown option".
const UNSUPPORTED: [&str; 4] = ["sslcert", "sslkey", "sslpassword", "sslcrl"];

/// Splits the TLS parameters off `conn` (a `postgres://` URL or a libpq
/// key=value string): returns the string without them, and the settings.
pub fn split_tls_params(conn: &str) -> Result<(String, TlsSettings), String> {
    let trimmed = conn.trim();
    let mut settings = TlsSettings::default();
    let mut take = |key: &str, value: &str| -> Result<bool, String> {
        match key {
            "sslmode" => settings.mode = SslMode::parse(value)?,
            "sslrootcert" => {
                settings.root_cert = match value {
                    "" | "system" => None,
                    path => Some(PathBuf::from(path)),
                }
            }
            "channel_binding" if value == "require" => {
                return Err("channel_binding=require is not supported: the replication \
                            connection cannot bind SCRAM to TLS; sslmode=verify-full (with \
                            sslrootcert) is what protects against a man in the middle"
                    .into())
            }
            k if UNSUPPORTED.contains(&k) => {
                return Err(format!(
                    "{k} is not supported: the bridge does not present a client certificate; \
                     authenticate with a password"
                ))
            }
            _ => return Ok(false),
        }
        Ok(true)
    };
    let rest = if trimmed.starts_with("postgres://") || trimmed.starts_with("postgresql://") {
        split_url_query(trimmed, &mut take)?
    } else {
        split_key_values(trimmed, &mut take)?
    };
    Ok((rest, settings))
}

type Take<'a> = dyn FnMut(&str, &str) -> Result<bool, String> + 'a;

/// `postgres://…?a=1&sslmode=require` → `postgres://…?a=1`.
fn split_url_query(url: &str, take: &mut Take<'_>) -> Result<String, String> {
    let Some((base, query)) = url.split_once('?') else {
        return Ok(url.to_owned());
    };
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if !take(&url_decode(key), &url_decode(value))? {
            kept.push(pair);
        }
    }
    Ok(if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    })
}

/// Percent-decoding as in a URL's query (`+` stays `+`, as libpq reads it).
fn url_decode(text: &str) -> String {
    let protected = text.replace('+', "%2B");
    url::form_urlencoded::parse(format!("x={protected}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// `host=db sslmode=require user=x` → `host=db user=x`. Values may be
/// single-quoted with backslash escapes, as libpq allows. A string this
/// tokenizer cannot read is returned unchanged, for tokio-postgres to report.
fn split_key_values(text: &str, take: &mut Take<'_>) -> Result<String, String> {
    let Some(pairs) = key_value_pairs(text) else {
        return Ok(text.to_owned());
    };
    let mut kept = Vec::new();
    for (key, value, raw) in pairs {
        if !take(&key, &value)? {
            kept.push(raw);
        }
    }
    Ok(kept.join(" "))
}

/// (key, unquoted value, the pair's original text).
fn key_value_pairs(text: &str) -> Option<Vec<(String, String, &str)>> {
    let bytes = text.as_bytes();
    let mut pairs = Vec::new();
    let mut i = 0;
    let skip_space = |i: &mut usize| {
        while *i < bytes.len() && bytes[*i].is_ascii_whitespace() {
            *i += 1;
        }
    };
    loop {
        skip_space(&mut i);
        if i >= bytes.len() {
            return Some(pairs);
        }
        let start = i;
        while i < bytes.len() && bytes[i] != b'=' && !bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        let key = text[start..i].to_owned();
        skip_space(&mut i);
        if bytes.get(i) != Some(&b'=') || key.is_empty() {
            return None;
        }
        i += 1;
        skip_space(&mut i);
        let mut value = String::new();
        if bytes.get(i) == Some(&b'\'') {
            i += 1;
            loop {
                match bytes.get(i)? {
                    b'\'' => {
                        i += 1;
                        break;
                    }
                    b'\\' => {
                        value.push(*bytes.get(i + 1)? as char);
                        i += 2;
                    }
                    _ => {
                        let ch = text[i..].chars().next()?;
                        value.push(ch);
                        i += ch.len_utf8();
                    }
                }
            }
        } else {
            let value_start = i;
            while i < bytes.len() && !bytes[i].is_ascii_whitespace() {
                i += 1;
            }
            value.push_str(&text[value_start..i]);
        }
        pairs.push((key, value, &text[start..i]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_prefer_like_libpq() {
        let (rest, tls) = split_tls_params("postgres://u:p@h:5432/db").unwrap();
        assert_eq!(rest, "postgres://u:p@h:5432/db");
        assert_eq!(tls.mode, SslMode::Prefer);
        assert!(!tls.verifies_chain());
    }

    #[test]
    fn url_query_parameters_are_taken_out_and_others_kept() {
        let (rest, tls) = split_tls_params(
            "postgresql://u:p@h/db?application_name=x&sslmode=verify-full&sslrootcert=%2Fetc%2Fca%20dir%2Fca.pem",
        )
        .unwrap();
        assert_eq!(rest, "postgresql://u:p@h/db?application_name=x");
        assert_eq!(tls.mode, SslMode::VerifyFull);
        assert_eq!(tls.root_cert, Some(PathBuf::from("/etc/ca dir/ca.pem")));
        assert!(tls.verifies_chain() && tls.verifies_host());
    }

    #[test]
    fn key_value_form_with_quotes() {
        let (rest, tls) = split_tls_params(
            "host=db  user=bridge sslmode = verify-ca sslrootcert='/etc/my ca\\'s.pem' dbname=chatwoot",
        )
        .unwrap();
        assert_eq!(rest, "host=db user=bridge dbname=chatwoot");
        assert_eq!(tls.mode, SslMode::VerifyCa);
        assert_eq!(tls.root_cert, Some(PathBuf::from("/etc/my ca's.pem")));
        assert!(tls.verifies_chain() && !tls.verifies_host());
    }

    #[test]
    fn require_with_a_root_certificate_verifies_the_chain_as_libpq_does() {
        let (_, tls) =
            split_tls_params("postgres://u@h/db?sslmode=require&sslrootcert=/ca.pem").unwrap();
        assert!(tls.verifies_chain() && !tls.verifies_host());
        let (_, tls) = split_tls_params("postgres://u@h/db?sslmode=require").unwrap();
        assert!(!tls.verifies_chain());
        // prefer never verifies: the replication connection could not.
        let (_, tls) = split_tls_params("postgres://u@h/db?sslrootcert=/ca.pem").unwrap();
        assert!(!tls.verifies_chain());
        let (_, tls) =
            split_tls_params("postgres://u@h/db?sslmode=verify-full&sslrootcert=system").unwrap();
        assert_eq!(tls.root_cert, None);
    }

    #[test]
    fn bad_values_say_what_is_accepted() {
        let err = split_tls_params("postgres://u@h/db?sslmode=required").unwrap_err();
        assert!(err.contains("verify-full"), "{err}");
        let err = split_tls_params("postgres://u@h/db?sslcert=/c.pem").unwrap_err();
        assert!(err.contains("sslcert is not supported"), "{err}");
        let err = split_tls_params("postgres://u@h/db?channel_binding=require").unwrap_err();
        assert!(err.contains("verify-full"), "{err}");
        let (rest, _) = split_tls_params("postgres://u@h/db?channel_binding=disable").unwrap();
        assert_eq!(rest, "postgres://u@h/db?channel_binding=disable");
    }
}

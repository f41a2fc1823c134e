//! Shared set-up for the GLPI client tests: an emulator with the default
//! API user and a client configured for it.

#![allow(dead_code)]

use std::time::Duration;

use chatwoot_glpi_bridge::glpi::{GlpiClient, GlpiConfig, RetryPolicy};
use chatwoot_glpi_bridge::glpi_emulator::{Emulator, EmulatorConfig, RecordedRequest};
use chatwoot_glpi_bridge::secret::Secret;

pub const APP_TOKEN: &str = "emulator-app-token";
pub const USER_TOKEN: &str = "emulator-user-token";

pub async fn emulator() -> Emulator {
    Emulator::start(EmulatorConfig::default())
        .await
        .expect("emulator starts")
}

/// The client configuration matching [`emulator`]: unlimited rate, 8 in
/// flight, 5 s timeout, 5 retries.
pub fn config(emulator: &Emulator) -> GlpiConfig {
    GlpiConfig {
        api_url: emulator.api_url(),
        app_token: Some(Secret::new(APP_TOKEN)),
        user_token: Secret::new(USER_TOKEN),
        requests_per_second: None,
        max_in_flight: 8,
        timeout: Duration::from_secs(5),
        max_retries: 5,
        ca_cert: None,
        allow_http: false,
        metrics: None,
    }
}

/// Short backoff so retry tests stay fast; `Retry-After` still honoured.
pub fn fast_retries() -> RetryPolicy {
    RetryPolicy {
        base_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(200),
        max_retry_after: Duration::from_secs(5),
    }
}

pub fn client_with(config: GlpiConfig) -> GlpiClient {
    GlpiClient::with_retry_policy(config, fast_retries()).expect("valid client config")
}

pub fn client(emulator: &Emulator) -> GlpiClient {
    client_with(config(emulator))
}

/// Requests with this method whose path is `path` (exact) or, when `path`
/// ends with `*`, starts with it.
pub fn requests_to(emulator: &Emulator, method: &str, path: &str) -> Vec<RecordedRequest> {
    emulator
        .requests()
        .into_iter()
        .filter(|r| r.method == method)
        .filter(|r| match path.strip_suffix('*') {
            Some(prefix) => r.path.starts_with(prefix),
            None => r.path.trim_end_matches('/') == path,
        })
        .collect()
}

pub fn count(emulator: &Emulator, method: &str, path: &str) -> usize {
    requests_to(emulator, method, path).len()
}

pub fn header<'a>(request: &'a RecordedRequest, name: &str) -> Option<&'a str> {
    request
        .headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

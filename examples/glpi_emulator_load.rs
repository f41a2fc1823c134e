//! Load figures for the GLPI emulator: how fast it answers creates and
//! searches with many rows, so tests and benchmarks that use it know it is
//! not their bottleneck.
//!
//! `cargo run --release --example glpi_emulator_load -- [users] [searches]`

use std::time::{Duration, Instant};

use chatwoot_glpi_bridge::glpi_emulator::{Emulator, EmulatorConfig};
use futures_util::stream::{self, StreamExt};
use serde_json::{json, Value};

const IN_FLIGHT: usize = 16;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let users: usize = args.next().map_or(Ok(5_000), |a| a.parse())?;
    let searches: usize = args.next().map_or(Ok(1_000), |a| a.parse())?;

    let emulator = Emulator::start(EmulatorConfig::default()).await?;
    let api = emulator.api_url();
    let http = reqwest::Client::new();
    let login: Value = http
        .get(format!("{api}/initSession"))
        .header("App-Token", "emulator-app-token")
        .header("Authorization", "user_token emulator-user-token")
        .send()
        .await?
        .json()
        .await?;
    let session = login["session_token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();

    let timed = |method: reqwest::Method, path: String, body: Option<Value>| {
        let request = http
            .request(method, format!("{api}{path}"))
            .header("App-Token", "emulator-app-token")
            .header("Session-Token", &session);
        let request = match body {
            Some(b) => request.json(&b),
            None => request,
        };
        async move {
            let started = Instant::now();
            let status = request
                .send()
                .await
                .map(|r| r.status().as_u16())
                .unwrap_or(0);
            (status, started.elapsed())
        }
    };

    let started = Instant::now();
    let creates: Vec<(u16, Duration)> = stream::iter(0..users)
        .map(|i| {
            timed(
                reqwest::Method::POST,
                "/User/".to_owned(),
                Some(json!({"input": {"name": format!("user{i}"),
                                      "_useremails": [format!("user{i}@example.com")]}})),
            )
        })
        .buffer_unordered(IN_FLIGHT)
        .collect()
        .await;
    report("create User (+1 email)", &creates, started.elapsed());

    let started = Instant::now();
    let found: Vec<(u16, Duration)> = stream::iter(0..searches)
        .map(|i| {
            let email = format!("user{}@example.com", (i * 7919) % users.max(1));
            timed(
                reqwest::Method::GET,
                format!(
                    "/search/User?criteria[0][field]=5&criteria[0][searchtype]=contains&criteria[0][value]=%5E{email}%24&forcedisplay[0]=2"
                ),
                None,
            )
        })
        .buffer_unordered(IN_FLIGHT)
        .collect()
        .await;
    report(
        &format!("search User by email ({users} users)"),
        &found,
        started.elapsed(),
    );
    println!("max requests in flight seen: {}", emulator.max_in_flight());
    emulator.shutdown().await;
    Ok(())
}

fn report(what: &str, results: &[(u16, Duration)], total: Duration) {
    let mut times: Vec<Duration> = results.iter().map(|(_, d)| *d).collect();
    times.sort();
    let pct = |p: f64| times[((times.len() as f64 * p) as usize).min(times.len() - 1)];
    let failures = results
        .iter()
        .filter(|(s, _)| !(200..300).contains(s))
        .count();
    println!(
        "{what}: {} requests in {:.2?} = {:.0}/s, p50 {:.2?}, p99 {:.2?}, failures {failures}",
        results.len(),
        total,
        results.len() as f64 / total.as_secs_f64(),
        pct(0.50),
        pct(0.99),
    );
}

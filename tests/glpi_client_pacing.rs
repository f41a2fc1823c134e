//! Pacing and session reuse of the GLPI client against the emulator: one
//! rate limiter and one in-flight bound per GLPI instance, shared by every
//! clone, and one session for all calls.

mod glpi_client_common;

use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use chatwoot_glpi_bridge::glpi::GlpiClient;
use chatwoot_glpi_bridge::glpi_emulator::Fault;
use glpi_client_common::*;
use serde_json::json;

/// Most requests that arrived within any window of `window` (sliding,
/// half-open), from the emulator's arrival times.
fn max_in_window(mut times: Vec<Instant>, window: Duration) -> usize {
    times.sort();
    let mut best = 0;
    let mut start = 0;
    for end in 0..times.len() {
        while times[end].duration_since(times[start]) >= window {
            start += 1;
        }
        best = best.max(end - start + 1);
    }
    best
}

/// Creates `n` contacts from `tasks` concurrent tasks, each using its own
/// clone of `client`.
async fn create_contacts(client: &GlpiClient, n: usize, tasks: usize) {
    let mut handles = Vec::new();
    for t in 0..tasks {
        let client = client.clone();
        handles.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for i in (t..n).step_by(tasks) {
                let input =
                    json!({"name": format!("Burst {i}"), "email": format!("burst{i}@example.org")});
                ids.push(client.create("Contact", &input).await.expect("create"));
            }
            ids
        }));
    }
    let mut all = Vec::new();
    for h in handles {
        all.extend(h.await.unwrap());
    }
    all.sort_unstable();
    all.dedup();
    assert_eq!(all.len(), n, "every create returned a distinct id");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn burst_of_1000_creates_respects_the_rate_and_one_session() {
    const RATE: u32 = 250;
    let emulator = emulator().await;
    let mut config = config(&emulator);
    config.requests_per_second = NonZeroU32::new(RATE);
    config.max_in_flight = 8;
    let client = client_with(config);

    let started = Instant::now();
    create_contacts(&client, 1000, 32).await;
    let elapsed = started.elapsed();

    assert_eq!(emulator.items("Contact").len(), 1000);
    assert_eq!(
        count(&emulator, "POST", "/Contact"),
        1000,
        "no create sent twice"
    );
    assert_eq!(
        count(&emulator, "GET", "/initSession"),
        1,
        "one session for all calls"
    );
    assert!(
        emulator.max_in_flight() <= 8,
        "in flight: {}",
        emulator.max_in_flight()
    );

    let times: Vec<Instant> = emulator.requests().iter().map(|r| r.at).collect();
    assert_eq!(times.len(), 1001);
    let busiest = max_in_window(times.clone(), Duration::from_secs(1));
    // The limiter keeps any second at RATE at most; arrival times carry a
    // few ms of scheduling jitter on a loaded machine, hence 1 % allowance.
    let allowed = RATE as usize + RATE as usize / 100;
    assert!(
        busiest <= allowed,
        "{busiest} requests in one second, rate {RATE}"
    );
    let span = times
        .iter()
        .max()
        .unwrap()
        .duration_since(*times.iter().min().unwrap());
    let average = 1000.0 / span.as_secs_f64();
    assert!(average <= RATE as f64, "average {average:.1}/s");
    println!(
        "1001 requests in {:.2} s: busiest second {busiest}, average {average:.1}/s, max in flight {}",
        elapsed.as_secs_f64(),
        emulator.max_in_flight()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_flight_bound_holds_across_clones() {
    let emulator = emulator().await;
    let mut config = config(&emulator);
    config.max_in_flight = 4;
    let client = client_with(config);
    // Open the session before slowing GLPI down.
    client.get("User", 2).await.unwrap();
    emulator.inject(Fault::Latency(Duration::from_millis(20)));

    create_contacts(&client, 200, 50).await;

    let seen = emulator.max_in_flight();
    assert!(seen <= 4, "{seen} requests in flight, bound 4");
    assert!(
        seen >= 3,
        "the load never reached the bound ({seen}): the test proves nothing"
    );
}

#[tokio::test]
async fn concurrent_first_calls_share_one_session() {
    let emulator = emulator().await;
    let client = client(&emulator);
    let mut handles = Vec::new();
    for _ in 0..40 {
        let client = client.clone();
        handles.push(tokio::spawn(async move { client.get("User", 2).await }));
    }
    for h in handles {
        assert!(h.await.unwrap().unwrap().is_some());
    }
    assert_eq!(count(&emulator, "GET", "/initSession"), 1);
    assert_eq!(count(&emulator, "GET", "/User/2"), 40);
    assert_eq!(emulator.active_sessions(), 1);
    let session_tokens: std::collections::HashSet<String> =
        requests_to(&emulator, "GET", "/User/2")
            .iter()
            .map(|r| header(r, "session-token").unwrap().to_owned())
            .collect();
    assert_eq!(session_tokens.len(), 1);

    client.kill_session().await.unwrap();
    assert_eq!(count(&emulator, "GET", "/killSession"), 1);
    assert_eq!(emulator.active_sessions(), 0);
}

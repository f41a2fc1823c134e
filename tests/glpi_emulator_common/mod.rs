//! Helpers for the GLPI emulator contract tests: plain reqwest requests, as
//! a GLPI client would send them (deliberately not the bridge's client).
#![allow(dead_code)]

use chatwoot_glpi_bridge::glpi_emulator::{Emulator, EmulatorConfig};
use reqwest::{Method, RequestBuilder, Response};
use serde_json::Value;

pub const APP_TOKEN: &str = "emulator-app-token";
pub const USER_TOKEN: &str = "emulator-user-token";

pub struct Glpi {
    pub emulator: Emulator,
    pub http: reqwest::Client,
    pub session: String,
}

impl Glpi {
    pub async fn start() -> Glpi {
        Glpi::start_with(EmulatorConfig::default()).await
    }

    pub async fn start_with(config: EmulatorConfig) -> Glpi {
        let emulator = Emulator::start(config).await.expect("emulator starts");
        let http = reqwest::Client::new();
        let mut glpi = Glpi {
            emulator,
            http,
            session: String::new(),
        };
        glpi.session = glpi.login().await;
        glpi
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.emulator.api_url(), path)
    }

    pub async fn login(&self) -> String {
        let response = self
            .http
            .get(self.url("/initSession"))
            .header("App-Token", APP_TOKEN)
            .header("Authorization", format!("user_token {USER_TOKEN}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        body["session_token"].as_str().unwrap().to_owned()
    }

    /// A request with both tokens set.
    pub fn req(&self, method: Method, path: &str) -> RequestBuilder {
        self.http
            .request(method, self.url(path))
            .header("App-Token", APP_TOKEN)
            .header("Session-Token", &self.session)
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        send(self.req(Method::GET, path)).await
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        send(self.req(Method::POST, path).json(&body)).await
    }

    pub async fn put(&self, path: &str, body: Value) -> (u16, Value) {
        send(self.req(Method::PUT, path).json(&body)).await
    }

    /// Creates one item and returns its id (asserting 201).
    pub async fn create(&self, itemtype: &str, input: Value) -> i64 {
        let (status, body) = self
            .post(
                &format!("/{itemtype}/"),
                serde_json::json!({ "input": input }),
            )
            .await;
        assert_eq!(status, 201, "creating {itemtype}: {body}");
        body["id"].as_i64().unwrap()
    }
}

pub async fn send(request: RequestBuilder) -> (u16, Value) {
    let response = request.send().await.expect("the emulator answers");
    json_of(response).await
}

pub async fn json_of(response: Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, body)
}

/// The documentation suffix GLPI appends to some error messages.
pub fn doc(glpi: &Glpi, code: &str) -> String {
    format!(
        "; view documentation in your browser at {}/#{code}",
        glpi.emulator.api_url()
    )
}

//! The GLPI client's calls against the emulator: request shapes, typed
//! helpers, search (exact match, `+`, `_`, HTML decoding, multi-valued
//! cells, empty results), permanent errors with GLPI's constant and
//! message, configuration refusals, and tokens kept out of logs and errors.

mod glpi_client_common;

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use chatwoot_glpi_bridge::glpi::{
    ContactInput, FollowupInput, GlpiClient, GlpiConfig, GlpiConfigError, Requester, SearchQuery,
    TicketInput, UserInput, ACTOR_REQUESTER,
};
use chatwoot_glpi_bridge::glpi_emulator::{ApiUser, Emulator, EmulatorConfig};
use chatwoot_glpi_bridge::secret::Secret;
use glpi_client_common::*;
use serde_json::json;

/// Everything logged by this test binary, at TRACE level, `log` records of
/// the HTTP stack included.
fn captured_logs() -> Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let writer = buffer.clone();
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || LogWriter(writer.clone()))
            .try_init()
            .expect("first subscriber of this test binary");
        buffer
    })
    .clone()
}

struct LogWriter(Arc<Mutex<Vec<u8>>>);

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn requests_have_glpi_shapes() {
    let emulator = emulator().await;
    let client = client(&emulator);
    let ticket = client
        .create_ticket(&TicketInput {
            name: "Shapes".into(),
            content: "c".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    client.list_followups(ticket).await.unwrap();
    client
        .search("Ticket", &SearchQuery::new().exact(1, "Shapes"))
        .await
        .unwrap();
    client.get("Ticket", ticket).await.unwrap();

    let init = &requests_to(&emulator, "GET", "/initSession")[0];
    assert_eq!(
        header(init, "authorization"),
        Some("user_token emulator-user-token")
    );
    assert_eq!(header(init, "app-token"), Some(APP_TOKEN));
    let post = &requests_to(&emulator, "POST", "/Ticket")[0];
    assert_eq!(
        post.body.as_ref().unwrap()["input"]["name"],
        json!("Shapes")
    );
    assert!(post.body.as_ref().unwrap()["input"].get("id").is_none());
    assert_eq!(header(post, "content-type"), Some("application/json"));
    let list = &requests_to(&emulator, "GET", "/Ticket/*")
        .into_iter()
        .find(|r| r.path.contains("ITILFollowup"))
        .unwrap();
    assert!(list.query.contains("range=0-999"), "{}", list.query);
    let search = &requests_to(&emulator, "GET", "/search/Ticket")[0];
    assert!(search.query.contains("range="), "{}", search.query);
    for get in requests_to(&emulator, "GET", "/*") {
        if get.path != "/initSession" {
            assert_eq!(
                header(&get, "x-glpi-sanitized-content"),
                Some("false"),
                "{}",
                get.path
            );
            assert!(header(&get, "session-token").is_some());
        }
    }
}

#[tokio::test]
async fn permanent_errors_carry_glpi_constant_and_message() {
    let emulator = emulator().await;
    let client = client(&emulator);
    let user = UserInput {
        login: "jdoe".into(),
        emails: vec!["jdoe@example.org".into()],
        ..Default::default()
    };
    client.create_user(&user).await.unwrap();
    let err = client.create_user(&user).await.unwrap_err();
    assert!(err.is_permanent(), "{err}");
    assert_eq!(err.constant(), Some("ERROR_GLPI_ADD"));
    assert_eq!(
        err.message(),
        Some("Unable to add. The user already exists.")
    );
    assert_eq!(err.status(), Some(400));
    assert!(err.to_string().contains("POST /User"), "{err}");

    let ticket = client
        .create_ticket(&TicketInput {
            name: "t".into(),
            content: "c".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let err = client
        .create_followup(&FollowupInput {
            ticket_id: ticket,
            content: String::new(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(err.is_permanent());
    assert_eq!(err.constant(), Some("ERROR_GLPI_ADD"));
    assert_eq!(
        err.message(),
        Some("You can't add a followup without description")
    );

    assert_eq!(client.get("Ticket", 999_999).await.unwrap(), None);
    let err = client.list_followups(999_999).await.unwrap_err();
    assert!(err.is_not_found() && err.is_permanent(), "{err}");
    assert_eq!(err.status(), Some(404));
    assert_eq!(err.message(), Some("Item not found"));

    let err = client
        .update_ticket_status_priority(999_999, 5, None)
        .await
        .unwrap_err();
    assert_eq!(err.constant(), Some("ERROR_GLPI_UPDATE"));
    assert!(err.is_permanent());

    let err = client
        .create_contact(&ContactInput {
            name: Some("Elsewhere".into()),
            entities_id: Some(42),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.constant(), Some("ERROR_GLPI_ADD"));
    assert!(err.message().unwrap().contains("permission"), "{err}");
    assert!(err.to_string().contains("profile"), "hint: {err}");

    let posts_before = count(&emulator, "POST", "/Contact");
    let err = client
        .create("Contact", &json!({"id": 1, "name": "clone?"}))
        .await
        .unwrap_err();
    assert!(
        err.is_permanent() && err.to_string().contains("clone"),
        "{err}"
    );
    assert_eq!(
        count(&emulator, "POST", "/Contact"),
        posts_before,
        "nothing sent"
    );
}

#[tokio::test]
async fn search_exact_match_handles_plus_underscore_and_html() {
    let emulator = emulator().await;
    let client = client(&emulator);
    let plus = client
        .create_user(&UserInput {
            login: "snake_case".into(),
            emails: vec!["a+b@example.org".into(), "alt.a@example.org".into()],
            ..Default::default()
        })
        .await
        .unwrap();
    let other = client
        .create_user(&UserInput {
            login: "snakexcase".into(),
            emails: vec!["ab@example.org".into()],
            ..Default::default()
        })
        .await
        .unwrap();

    assert_eq!(
        client.find_users_by_login("snake_case").await.unwrap(),
        [plus]
    );
    assert_eq!(
        client.find_users_by_login("SNAKEXCASE").await.unwrap(),
        [other]
    );
    assert_eq!(
        client.find_users_by_email("a+b@example.org").await.unwrap(),
        [plus]
    );
    assert_eq!(
        client
            .find_users_by_email("alt.a@example.org")
            .await
            .unwrap(),
        [plus]
    );
    assert_eq!(
        client.find_users_by_email("ab@example.org").await.unwrap(),
        [other]
    );
    assert!(client
        .find_users_by_email("b@example.org")
        .await
        .unwrap()
        .is_empty());
    let sent = requests_to(&emulator, "GET", "/search/User");
    assert!(
        sent.iter().any(|r| r.query.contains("a%2Bb%40example.org")),
        "a literal + goes out as %2B"
    );

    // Multi-valued cell: both emails of one user, as a list.
    let result = client
        .search(
            "User",
            &SearchQuery::new().exact(1, "snake_case").display(5),
        )
        .await
        .unwrap();
    assert_eq!(result.total_count, 1);
    let emails = result.rows[0].cell(5).unwrap().texts();
    assert_eq!(emails.len(), 2, "{emails:?}");
    assert_eq!(result.rows[0].id(), Some(plus));

    // HTML-encoded by GLPI 10 in storage and in search; decoded here.
    let name = "A & B <c> \"q\"";
    let contact = client
        .create_contact(&ContactInput {
            name: Some(name.into()),
            email: Some("html@example.org".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let stored = emulator.item("Contact", contact).unwrap();
    assert_eq!(
        stored["name"],
        json!("A &#38; B &#60;c&#62; \"q\""),
        "GLPI 10 stores encoded"
    );
    let result = client
        .search(
            "Contact",
            &SearchQuery::new().exact(6, "html@example.org").display(1),
        )
        .await
        .unwrap();
    assert_eq!(
        result.rows[0].cell(1).unwrap().text().as_deref(),
        Some(name)
    );
    assert_eq!(
        client.get("Contact", contact).await.unwrap().unwrap()["name"],
        json!(name)
    );
    assert_eq!(
        client
            .find_contacts_by_email("HTML@example.org")
            .await
            .unwrap(),
        [contact]
    );

    // No match: no `data` key, zero rows.
    let none = client
        .search(
            "Contact",
            &SearchQuery::new().exact(6, "nobody@example.org"),
        )
        .await
        .unwrap();
    assert_eq!(none.total_count, 0);
    assert!(none.rows.is_empty());
}

#[tokio::test]
async fn typed_helpers_round_trip() {
    let emulator = emulator().await;
    let client = client(&emulator);
    let user = client
        .create_user(&UserInput {
            login: "jane@example.org".into(),
            realname: Some("Doe".into()),
            firstname: Some("Jane".into()),
            emails: vec!["jane@example.org".into()],
            phone: Some("+33 1 23".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let emails = client.user_emails(user).await.unwrap();
    assert_eq!(emails.len(), 1);
    assert!(emails[0].is_default && emails[0].email == "jane@example.org");
    client
        .add_user_email(user, "jane.alt@example.org", false)
        .await
        .unwrap();
    assert_eq!(client.user_emails(user).await.unwrap().len(), 2);
    client
        .update_user(
            user,
            &UserInput {
                login: "jane@example.org".into(),
                realname: Some("Doe-Smith".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        client.get("User", user).await.unwrap().unwrap()["realname"],
        json!("Doe-Smith")
    );

    let ticket = client
        .create_ticket(&TicketInput {
            name: "Printer".into(),
            content: "<p>Broken & loud</p>".into(),
            status: Some(2),
            ticket_type: Some(1),
            requester: Requester::User(user),
            ..Default::default()
        })
        .await
        .unwrap();
    let actors = client.list_ticket_users(ticket).await.unwrap();
    assert_eq!(actors.len(), 1);
    assert_eq!(
        (actors[0].users_id, actors[0].role),
        (user, ACTOR_REQUESTER)
    );

    let anonymous = client
        .create_ticket(&TicketInput {
            name: "Anon".into(),
            content: "hi".into(),
            requester: Requester::Email("anon@example.org".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let actors = client.list_ticket_users(anonymous).await.unwrap();
    assert_eq!(actors.len(), 1);
    assert_eq!(actors[0].users_id, 0);
    assert_eq!(actors[0].alternative_email, "anon@example.org");

    let followup = client
        .create_followup(&FollowupInput {
            ticket_id: ticket,
            content: "a < b & c".into(),
            is_private: true,
            date: Some("2024-01-15 10:30:00".into()),
            users_id: Some(user),
            requesttypes_id: None,
        })
        .await
        .unwrap();
    let followups = client.list_followups(ticket).await.unwrap();
    assert_eq!(followups.len(), 1);
    assert_eq!(followups[0].id, followup);
    assert_eq!(followups[0].content, "a < b & c");
    assert!(followups[0].is_private);
    assert_eq!(followups[0].date.as_deref(), Some("2024-01-15 10:30:00"));
    assert_eq!(followups[0].users_id, user);
    client
        .update_followup(followup, "edited", false)
        .await
        .unwrap();
    let followups = client.list_followups(ticket).await.unwrap();
    assert_eq!(
        (followups[0].content.as_str(), followups[0].is_private),
        ("edited", false)
    );

    client
        .update_ticket_status_priority(ticket, 5, Some(4))
        .await
        .unwrap();
    let stored = client.get("Ticket", ticket).await.unwrap().unwrap();
    assert_eq!(stored["status"], json!(5));
    assert_eq!(stored["priority"], json!(4));

    let contact = client
        .create_contact(&ContactInput {
            name: Some("Roe".into()),
            mobile: Some("+44 7700 900123".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        client
            .find_contacts_by_phone("+44 7700 900123")
            .await
            .unwrap(),
        [contact]
    );
    assert!(client
        .find_contacts_by_phone("+44 7700")
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn misconfiguration_is_refused_with_what_to_fix() {
    let mut refused = GlpiConfig::new("http://glpi.example.com/apirest.php", Secret::new("t"));
    let err = GlpiClient::new(refused.clone()).unwrap_err();
    assert!(matches!(err, GlpiConfigError::InsecureHttp { .. }), "{err}");
    assert!(err.to_string().contains("GLPI_ALLOW_HTTP"), "{err}");
    refused.allow_http = true;
    assert!(GlpiClient::new(refused).is_ok());

    let err = GlpiClient::new(GlpiConfig::new(
        "https://glpi.example.com/glpi/",
        Secret::new("t"),
    ))
    .unwrap_err();
    assert!(matches!(err, GlpiConfigError::WrongPath { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("https://glpi.example.com/glpi/apirest.php"),
        "{err}"
    );

    // A wrong user token is a permanent error naming the setting.
    let emulator = emulator().await;
    let mut config = config(&emulator);
    config.user_token = Secret::new("wrong-user-token-value");
    let client = client_with(config);
    let err = client.get("User", 2).await.unwrap_err();
    assert!(err.is_permanent(), "{err}");
    assert_eq!(err.constant(), Some("ERROR_GLPI_LOGIN_USER_TOKEN"));
    assert!(err.to_string().contains("Remote access keys"), "{err}");
    assert!(!err.to_string().contains("wrong-user-token-value"));
}

#[tokio::test]
async fn tokens_never_reach_logs_errors_or_debug() {
    let logs = captured_logs();
    const APP: &str = "app-7c1e9b2f-secret";
    const USER: &str = "user-5d0a44e1-secret";
    let emulator = Emulator::start(EmulatorConfig {
        app_token: Some(APP.into()),
        users: vec![ApiUser {
            id: 2,
            login: "glpi".into(),
            user_token: USER.into(),
        }],
        ..EmulatorConfig::default()
    })
    .await
    .unwrap();
    let mut config = config(&emulator);
    config.app_token = Some(Secret::new(APP));
    config.user_token = Secret::new(USER);
    let client = client_with(config.clone());

    // A full session: open, calls, an expired session, errors, kill.
    let mut errors = Vec::new();
    let id = client
        .create_contact(&ContactInput {
            name: Some("Log".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    client.get("Contact", id).await.unwrap();
    emulator.inject(chatwoot_glpi_bridge::glpi_emulator::Fault::InvalidateSessions);
    client.get("Contact", id).await.unwrap();
    errors.push(client.list_followups(999_999).await.unwrap_err());
    emulator.inject(chatwoot_glpi_bridge::glpi_emulator::Fault::ServerErrors {
        count: 1,
        status: 500,
    });
    errors.push(
        client
            .create_contact(&ContactInput::default())
            .await
            .unwrap_err(),
    );
    client.kill_session().await.unwrap();
    let mut wrong = config.clone();
    wrong.user_token = Secret::new(format!("{USER}-wrong"));
    errors.push(client_with(wrong).get("User", 2).await.unwrap_err());
    let mut no_app = config.clone();
    no_app.app_token = Some(Secret::new(format!("{APP}-wrong")));
    errors.push(client_with(no_app).get("User", 2).await.unwrap_err());

    let session_tokens: Vec<String> = emulator
        .requests()
        .iter()
        .filter_map(|r| header(r, "session-token").map(str::to_owned))
        .collect();
    assert!(!session_tokens.is_empty());
    let logs = String::from_utf8(logs.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("GLPI"), "the capture works: {logs}");
    let mut texts = vec![logs, format!("{client:?}"), format!("{config:?}")];
    for e in &errors {
        texts.push(e.to_string());
        texts.push(format!("{e:?}"));
    }
    for text in &texts {
        for secret in [APP, USER]
            .iter()
            .copied()
            .chain(session_tokens.iter().map(String::as_str))
        {
            assert!(!text.contains(secret), "a token leaked into: {text}");
        }
    }
}

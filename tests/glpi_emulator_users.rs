//! Contract: User and UserEmail (reference §5.1, §5.2, §7, appendix "Users
//! and search").

mod glpi_emulator_common;

use glpi_emulator_common::*;
use serde_json::json;

#[tokio::test]
async fn logins_are_unique_and_validated() {
    let glpi = Glpi::start().await;
    let (status, body) = glpi
        .post(
            "/User/",
            json!({"input": {"name": "jdoe", "realname": "Doe", "firstname": "John"}}),
        )
        .await;
    assert_eq!(
        (status, body),
        (
            201,
            json!({"id": 7, "message": "Item successfully added: Doe John"})
        )
    );
    for name in ["jdoe", "JDOE"] {
        let (status, body) = glpi.post("/User/", json!({"input": {"name": name}})).await;
        assert_eq!(
            (status, body),
            (
                400,
                json!(["ERROR_GLPI_ADD", "Unable to add. The user already exists."])
            )
        );
    }
    // the same login for another authentication source is another user
    glpi.create(
        "User",
        json!({"name": "jdoe", "authtype": 3, "auths_id": 1}),
    )
    .await;
    for name in ["a/b", "x+y", "", "<b>"] {
        let (status, body) = glpi.post("/User/", json!({"input": {"name": name}})).await;
        assert_eq!(
            (status, body),
            (
                400,
                json!([
                    "ERROR_GLPI_ADD",
                    "The login is not valid. Unable to add the user."
                ])
            ),
            "login {name:?}"
        );
    }
    let (status, _) = glpi
        .post("/User/", json!({"input": {"realname": "no login"}}))
        .await;
    assert_eq!(status, 400);
    for name in ["O'Neil Jr.", "élodie_2", "x+y@example.com"] {
        glpi.create("User", json!({"name": name})).await;
    }
    // a trashed user still blocks the login
    glpi.put("/User/7", json!({"input": {"is_deleted": 1}}))
        .await;
    let (status, _) = glpi
        .post("/User/", json!({"input": {"name": "jdoe"}}))
        .await;
    assert_eq!(status, 400);
    let stored = glpi.emulator.item("User", 7).unwrap();
    assert_eq!(stored["authtype"], 1);
    assert_eq!(stored["is_active"], 1);
}

#[tokio::test]
async fn useremails_first_is_default_invalid_skipped() {
    let glpi = Glpi::start().await;
    let id = glpi
        .create(
            "User",
            json!({"name": "alice", "_useremails": {"-1": "alice@example.com", "-2": "not an email", "-3": "alice.alt@example.com"}}),
        )
        .await;
    let (status, emails) = glpi.get(&format!("/User/{id}/UserEmail/")).await;
    assert_eq!(status, 200);
    let emails = emails.as_array().unwrap();
    assert_eq!(emails.len(), 2);
    assert_eq!(emails[0]["email"], "alice@example.com");
    assert_eq!(emails[0]["is_default"], 1);
    assert_eq!(emails[0]["is_dynamic"], 0);
    assert_eq!(emails[0]["users_id"], id);
    assert_eq!(emails[1]["is_default"], 0);
    // no email field on the user itself, and no secrets
    let (_, user) = glpi.get(&format!("/User/{id}")).await;
    for hidden in [
        "email",
        "_useremails",
        "password",
        "api_token",
        "personal_token",
        "cookie_token",
    ] {
        assert!(user.get(hidden).is_none(), "{hidden} must not be returned");
    }
}

/// GLPI's trap: list index 1 is a key > 0, so it names UserEmail row 1 —
/// which, on a fresh GLPI, is the address the same request just added.
#[tokio::test]
async fn useremails_list_index_one_overwrites_row_one() {
    let glpi = Glpi::start().await;
    let id = glpi
        .create(
            "User",
            json!({"name": "trap", "_useremails": ["first@example.com", "second@example.com"]}),
        )
        .await;
    let emails = glpi.emulator.items("UserEmail");
    assert_eq!(emails.len(), 1);
    assert_eq!(emails[0]["users_id"], id);
    assert_eq!(emails[0]["email"], "second@example.com");
    assert_eq!(emails[0]["is_default"], 0);
}

#[tokio::test]
async fn useremails_object_with_default_key() {
    let glpi = Glpi::start().await;
    let id = glpi
        .create(
            "User",
            json!({"name": "bob", "_useremails": {"-1": "bob@example.com", "-2": "bob2@example.com"},
                   "_default_email": "-2"}),
        )
        .await;
    let rows: Vec<_> = glpi
        .emulator
        .items("UserEmail")
        .into_iter()
        .filter(|e| e["users_id"] == id)
        .map(|e| {
            (
                e["email"].as_str().unwrap().to_owned(),
                e["is_default"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            ("bob@example.com".to_owned(), 0),
            ("bob2@example.com".to_owned(), 1)
        ]
    );
}

#[tokio::test]
async fn useremail_rows_can_be_posted_directly() {
    let glpi = Glpi::start().await;
    let id = glpi.create("User", json!({"name": "carol"})).await;
    let (status, body) = glpi
        .post(
            "/UserEmail/",
            json!({"input": {"users_id": id, "email": "carol@example.com"}}),
        )
        .await;
    assert_eq!((status, body), (201, json!({"id": 1, "message": ""})));
    assert_eq!(glpi.emulator.item("UserEmail", 1).unwrap()["is_default"], 1);
    // duplicate and invalid addresses fail silently
    for email in ["carol@example.com", "CAROL@example.com", "carol@"] {
        let (status, body) = glpi
            .post(
                "/UserEmail/",
                json!({"input": {"users_id": id, "email": email}}),
            )
            .await;
        assert_eq!(
            (status, body),
            (400, json!(["ERROR_GLPI_ADD", ""])),
            "{email}"
        );
    }
    // a second one marked default takes the default over
    glpi.create(
        "UserEmail",
        json!({"users_id": id, "email": "c2@example.com", "is_default": 1}),
    )
    .await;
    assert_eq!(glpi.emulator.item("UserEmail", 1).unwrap()["is_default"], 0);
    assert_eq!(glpi.emulator.item("UserEmail", 2).unwrap()["is_default"], 1);
    // updating through the user: an existing row id updates, "" deletes
    glpi.put(
        &format!("/User/{id}"),
        json!({"input": {"_useremails": {"1": "", "2": "c3@example.com", "-1": "c4@example.com"}}}),
    )
    .await;
    let emails: Vec<_> = glpi
        .emulator
        .items("UserEmail")
        .into_iter()
        .map(|e| e["email"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(emails, ["c3@example.com", "c4@example.com"]);
}

#[tokio::test]
async fn passwords_must_match_and_are_never_returned() {
    let glpi = Glpi::start().await;
    let (status, body) = glpi
        .post(
            "/User/",
            json!({"input": {"name": "dave", "password": "a", "password2": "b"}}),
        )
        .await;
    assert_eq!(
        (status, body),
        (
            400,
            json!(["ERROR_GLPI_ADD", "Error: the two passwords do not match"])
        )
    );
    let id = glpi
        .create(
            "User",
            json!({"name": "dave", "password": "s3cret", "password2": "s3cret"}),
        )
        .await;
    assert_ne!(
        glpi.emulator.item("User", id).unwrap()["password"],
        "s3cret"
    );
    let (_, user) = glpi.get(&format!("/User/{id}")).await;
    assert!(user.get("password").is_none());
}

#[tokio::test]
async fn renaming_to_a_taken_login_fails() {
    let glpi = Glpi::start().await;
    glpi.create("User", json!({"name": "erin"})).await;
    let other = glpi.create("User", json!({"name": "frank"})).await;
    let (status, body) = glpi
        .put(
            &format!("/User/{other}"),
            json!({"input": {"name": "Erin"}}),
        )
        .await;
    assert_eq!(
        (status, body),
        (
            400,
            json!([
                "ERROR_GLPI_UPDATE",
                "Unable to update login. A user already exists."
            ])
        )
    );
}

//! Contract: `GET /:itemtype/` lists — range, Content-Range/Accept-Range,
//! 206, range errors, searchText, is_deleted, sort (reference §3 "Read many").

mod glpi_emulator_common;

use glpi_emulator_common::*;
use reqwest::Method;
use serde_json::json;

async fn contacts(glpi: &Glpi, n: usize) {
    for i in 0..n {
        glpi.create(
            "Contact",
            json!({"name": format!("c{i:02}"), "email": format!("c{i}@example.com")}),
        )
        .await;
    }
}

#[tokio::test]
async fn ranges_and_headers() {
    let glpi = Glpi::start().await;
    contacts(&glpi, 20).await;
    let response = glpi
        .req(Method::GET, "/Contact/?range=0-4")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 206);
    assert_eq!(response.headers()["content-range"], "0-4/20");
    assert_eq!(response.headers()["accept-range"], "Contact 1000");
    let (_, body) = json_of(response).await;
    assert_eq!(body.as_array().unwrap().len(), 5);
    assert_eq!(body[0]["name"], "c00");

    let response = glpi
        .req(Method::GET, "/Contact/?range=15-99")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 206);
    assert_eq!(response.headers()["content-range"], "15-19/20");
    let response = glpi
        .req(Method::GET, "/Contact/?range=0-99")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    // default range: list_limit (15) rows, header computed from 0-15
    let response = glpi.req(Method::GET, "/Contact/").send().await.unwrap();
    assert_eq!(response.headers()["content-range"], "0-15/20");
    let (_, body) = json_of(response).await;
    assert_eq!(body.as_array().unwrap().len(), 15);

    let (status, body) = glpi.get("/Contact/?range=21-30").await;
    assert_eq!(status, 400);
    assert_eq!(
        body,
        json!([
            "ERROR_RANGE_EXCEED_TOTAL",
            format!(
                "Provided range exceed total count of data: 20{}",
                doc(&glpi, "ERROR_RANGE_EXCEED_TOTAL")
            )
        ])
    );
    let (status, body) = glpi.get("/Contact/?range=a-b").await;
    assert_eq!(status, 400);
    assert_eq!(body[0], "ERROR");
    let (status, body) = glpi.get("/Contact/?sort=nosuchcolumn").await;
    assert_eq!(status, 400);
    assert_eq!(body[0], "ERROR");
    let (_, body) = glpi.get("/Contact/?sort=name&order=DESC&range=0-0").await;
    assert_eq!(body[0]["name"], "c19");
}

#[tokio::test]
async fn empty_lists_have_no_content_range() {
    let glpi = Glpi::start().await;
    let response = glpi
        .req(Method::GET, "/Contact/?range=0-49")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(!response.headers().contains_key("content-range"));
    let (_, body) = json_of(response).await;
    assert_eq!(body, json!([]));
}

#[tokio::test]
async fn search_text_and_trash() {
    let glpi = Glpi::start().await;
    contacts(&glpi, 3).await;
    glpi.create("Contact", json!({"name": "a_b"})).await;
    glpi.create("Contact", json!({"name": "axb"})).await;
    let (_, body) = glpi
        .get("/Contact/?searchText[email]=%5Ec1@example.com%24&range=0-9")
        .await;
    assert_eq!(body.as_array().unwrap().len(), 1);
    assert_eq!(body[0]["name"], "c01");
    let (_, body) = glpi
        .get("/Contact/?searchText[email]=C1@EXAMPLE&range=0-9")
        .await;
    assert_eq!(body.as_array().unwrap().len(), 1);
    let (_, body) = glpi
        .get("/Contact/?searchText[name]=%5Ea_b%24&range=0-9")
        .await;
    assert_eq!(body.as_array().unwrap().len(), 1, "_ is not a wildcard");
    let (status, body) = glpi.get("/Contact/?searchText[nope]=x").await;
    assert_eq!(status, 400);
    assert_eq!(body[0], "ERROR_FIELD_NOT_FOUND");

    glpi.put("/Contact/1", json!({"input": {"is_deleted": 1}}))
        .await;
    let (_, body) = glpi.get("/Contact/?range=0-49").await;
    assert_eq!(body.as_array().unwrap().len(), 4);
    let (_, body) = glpi.get("/Contact/?range=0-49&is_deleted=true").await;
    assert_eq!(body.as_array().unwrap().len(), 1);
    assert_eq!(body[0]["id"], 1);
    // users: hidden unless asked, even by login
    let user = glpi.create("User", json!({"name": "trashed"})).await;
    glpi.put(
        &format!("/User/{user}"),
        json!({"input": {"is_deleted": 1}}),
    )
    .await;
    let (_, body) = glpi.get("/User/?searchText[name]=%5Etrashed%24").await;
    assert_eq!(body, json!([]));
    let (_, body) = glpi
        .get("/User/?searchText[name]=%5Etrashed%24&is_deleted=1")
        .await;
    assert_eq!(body[0]["id"], user);
}

#[tokio::test]
async fn item_links_and_last_modified() {
    let glpi = Glpi::start().await;
    let t = glpi.create("Ticket", json!({"name": "x"})).await;
    let response = glpi
        .req(Method::GET, &format!("/Ticket/{t}"))
        .send()
        .await
        .unwrap();
    let last_modified = response.headers()["last-modified"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(last_modified.ends_with(" GMT"), "{last_modified}");
    let (_, ticket) = json_of(response).await;
    let links = ticket["links"].as_array().unwrap();
    let api = glpi.emulator.api_url();
    assert!(links.contains(&json!({"rel": "Entity", "href": format!("{api}/Entity/0")})));
    assert!(links.contains(
        &json!({"rel": "ITILFollowup", "href": format!("{api}/Ticket/{t}/ITILFollowup/")})
    ));
    let (_, ticket) = glpi.get(&format!("/Ticket/{t}?get_hateoas=false")).await;
    assert!(ticket.get("links").is_none());
}

#[tokio::test]
async fn users_are_visible_through_their_profile_entities() {
    let glpi = Glpi::start_with(chatwoot_glpi_bridge::glpi_emulator::EmulatorConfig {
        writable_entities: vec![0, 2],
        ..Default::default()
    })
    .await;
    // created while the session sees everything from the root: profile on root only
    let rooted = glpi.create("User", json!({"name": "rooted"})).await;
    let in_two = glpi
        .create("User", json!({"name": "intwo", "_entities_id": 2}))
        .await;
    // multi-entity mode: search shows the entity column (80)
    let (_, body) = glpi
        .get("/search/User?criteria[0][field]=1&criteria[0][searchtype]=contains&criteria[0][value]=%5Erooted%24")
        .await;
    assert!(body["data"][0].get("80").is_some(), "{body}");

    glpi.post(
        "/changeActiveEntities",
        json!({"entities_id": 2, "is_recursive": false}),
    )
    .await;
    let (_, body) = glpi.get("/User/?searchText[name]=%5Erooted%24").await;
    assert_eq!(body, json!([]), "hidden outside the session's entities");
    let (status, body) = glpi.get(&format!("/User/{rooted}")).await;
    assert_eq!(status, 403);
    assert_eq!(body[0], "ERROR_RIGHT_MISSING");
    let (_, body) = glpi
        .get("/search/User?criteria[0][field]=1&criteria[0][searchtype]=contains&criteria[0][value]=%5Erooted%24")
        .await;
    assert_eq!(body["totalcount"], 0);
    let (status, _) = glpi.get(&format!("/User/{in_two}")).await;
    assert_eq!(status, 200);
    // the login is still taken
    let (status, _) = glpi
        .post("/User/", json!({"input": {"name": "rooted"}}))
        .await;
    assert_eq!(status, 400);
    // back to everything
    glpi.post("/changeActiveEntities", json!({"is_recursive": true}))
        .await;
    let (status, _) = glpi.get(&format!("/User/{rooted}")).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn expand_dropdowns_names_foreign_keys() {
    let glpi = Glpi::start().await;
    let t = glpi.create("Ticket", json!({"name": "x"})).await;
    let (_, ticket) = glpi
        .get(&format!("/Ticket/{t}?expand_dropdowns=true"))
        .await;
    assert_eq!(ticket["entities_id"], "Root entity");
    assert_eq!(ticket["users_id_recipient"], "glpi");
    assert_eq!(ticket["requesttypes_id"], "Helpdesk");
    assert_eq!(ticket["itilcategories_id"], 0);
}

//! GLPI's dispatcher (`APIRest::call`) in GLPI's order: parse parameters
//! (payload errors first), then for every resource but `initSession` the
//! App-Token check, then the Session-Token check, and only then the resource
//! or itemtype (so a bad itemtype without a session is a missing-session
//! error, as on a real GLPI). Header names are case-insensitive and the same
//! values are accepted in the query string.

use serde_json::{json, Map, Value};

use super::params::{self, as_int, as_text, ParamsError};
use super::read::{self, Parent, ReadOptions};
use super::reply::Reply;
use super::schema::ItemType;
use super::session::Session;
use super::store::Glpi;
use super::{create, lock, search, update, GlpiVersion, Shared};

pub(crate) struct ApiRequest<'a> {
    pub(crate) method: &'a str,
    /// After `/apirest.php`.
    pub(crate) path: &'a str,
    pub(crate) query: &'a str,
    /// Names in lower case.
    pub(crate) headers: &'a [(String, String)],
    pub(crate) body: &'a [u8],
}

impl ApiRequest<'_> {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

pub(crate) struct Outcome {
    pub(crate) reply: Reply,
    /// Set when the request created at least one item of this type.
    pub(crate) created: Option<ItemType>,
}

impl From<Reply> for Outcome {
    fn from(reply: Reply) -> Self {
        Outcome {
            reply,
            created: None,
        }
    }
}

pub(crate) fn handle(shared: &Shared, req: &ApiRequest<'_>) -> Outcome {
    let api_url = shared.api_url.as_str();
    let mut segments: Vec<&str> = req.path.split('/').filter(|s| !s.is_empty()).collect();
    // APIRest::call strips a leading `api/` or `v1/`.
    if matches!(segments.first(), Some(&"api") | Some(&"v1")) {
        segments.remove(0);
    }
    if req.method == "OPTIONS" {
        return options_reply(req).into();
    }
    let Some(resource) = segments.first().copied() else {
        return Reply::html(
            200,
            "<html><body><h1>GLPI REST API</h1></body></html>".into(),
        )
        .into();
    };
    let mut glpi = lock(&shared.glpi);
    let params = match params::parse(
        req.method,
        req.query,
        req.header("content-type"),
        req.body,
        glpi.version,
    ) {
        Ok(p) => p,
        Err(ParamsError::PayloadForbidden) => {
            return Reply::error(
                api_url,
                400,
                "ERROR_JSON_PAYLOAD_FORBIDDEN",
                "GET Request should not have json payload (http body)",
            )
            .into()
        }
        Err(ParamsError::PayloadInvalid) => {
            return Reply::error(
                api_url,
                400,
                "ERROR_JSON_PAYLOAD_INVALID",
                "JSON payload seems not valid",
            )
            .into()
        }
    };
    if let Err(reply) = check_app_token(shared, req, &params) {
        return reply.into();
    }
    if resource == "initSession" {
        return init_session(&mut glpi, req, &params, api_url).into();
    }
    let token = req
        .header("session-token")
        .map(str::to_owned)
        .or_else(|| params.get("session_token").and_then(as_text))
        .unwrap_or_default();
    if token.is_empty() {
        return Reply::error(
            api_url,
            400,
            "ERROR_SESSION_TOKEN_MISSING",
            "parameter session_token is missing or empty",
        )
        .into();
    }
    let Some(session) = glpi.sessions.get(&token).cloned() else {
        return Reply::error(
            api_url,
            401,
            "ERROR_SESSION_TOKEN_INVALID",
            "session_token seems invalid",
        )
        .into();
    };
    let ctx = Ctx {
        api_url,
        session,
        token,
        decode: glpi.version == GlpiVersion::V10
            && req
                .header("x-glpi-sanitized-content")
                .is_some_and(|v| v.trim().eq_ignore_ascii_case("false")),
    };
    dispatch(&mut glpi, req, &params, &segments, &ctx)
}

struct Ctx<'a> {
    api_url: &'a str,
    session: Session,
    token: String,
    decode: bool,
}

fn not_found_resource(api_url: &str) -> Reply {
    Reply::error(
        api_url,
        400,
        "ERROR_RESOURCE_NOT_FOUND_NOR_COMMONDBTM",
        "resource not found or not an instance of CommonDBTM",
    )
}

fn dispatch(
    glpi: &mut Glpi,
    req: &ApiRequest<'_>,
    params: &Map<String, Value>,
    segments: &[&str],
    ctx: &Ctx<'_>,
) -> Outcome {
    let api_url = ctx.api_url;
    let session = &ctx.session;
    match segments[0] {
        "killSession" => {
            glpi.sessions.kill(&ctx.token);
            return Reply::json(200, Value::Bool(true)).into();
        }
        "getFullSession" => return Reply::json(200, json!({"session": full_session(glpi, session)})).into(),
        "getActiveEntities" => {
            let entities: Vec<Value> = session
                .active_entities
                .iter()
                .map(|id| json!({"id": id}))
                .collect();
            return Reply::json(
                200,
                json!({"active_entity": {
                    "id": session.active_entity,
                    "active_entity_recursive": session.recursive,
                    "active_entities": entities,
                }}),
            )
            .into();
        }
        "getMyEntities" => {
            let entities: Vec<Value> = glpi
                .entities
                .iter()
                .map(|id| json!({"id": id, "name": glpi.entity_name(*id)}))
                .collect();
            return Reply::json(200, json!({ "myentities": entities })).into();
        }
        "changeActiveEntities" => return change_active_entities(glpi, params, ctx).into(),
        "changeActiveProfile" => {
            return match params.get("profiles_id").and_then(as_int) {
                None => Reply::error(api_url, 400, "ERROR", "Bad Request"),
                Some(4) => Reply::json(200, Value::Bool(true)),
                Some(_) => Reply::error(api_url, 404, "ERROR_ITEM_NOT_FOUND", "Item not found"),
            }
            .into()
        }
        "getActiveProfile" => return Reply::json(200, json!({"active_profile": profile()})).into(),
        "getMyProfiles" => return Reply::json(200, json!({"myprofiles": [profile()]})).into(),
        "getGlpiConfig" => {
            return Reply::json(
                200,
                json!({"cfg_glpi": {"url_base_api": api_url, "list_limit": read::LIST_LIMIT,
                        "version": match glpi.version { GlpiVersion::V10 => "10.0.19", GlpiVersion::V11 => "11.0.7" }}}),
            )
            .into()
        }
        "search" | "listSearchOptions" => {
            let Some(t) = segments.get(1).and_then(|s| ItemType::from_name(s)) else {
                return not_found_resource(api_url).into();
            };
            return if segments[0] == "search" {
                search::search(glpi, session, t, params, api_url)
            } else {
                search::list_search_options(glpi, t)
            }
            .into();
        }
        _ => {}
    }
    let Some(t) = ItemType::from_name(segments[0]) else {
        return not_found_resource(api_url).into();
    };
    // `getId()`: a non-numeric second segment is no id at all.
    let id = segments
        .get(1)
        .filter(|s| s.parse::<f64>().is_ok())
        .map(|s| as_int(&Value::from(*s)).unwrap_or(0));
    let options = ReadOptions { decode: ctx.decode };
    match req.method {
        "GET" => match (id, segments.get(2)) {
            (None, _) => read::get_items(glpi, session, t, None, params, options, api_url).into(),
            (Some(id), None) => {
                read::get_item(glpi, session, t, id, params, options, api_url).into()
            }
            (Some(id), Some(child)) => {
                let Some(child) = ItemType::from_name(child) else {
                    return Reply::error(
                        api_url,
                        400,
                        "ERROR_ITEMTYPE_NOT_FOUND_NOR_COMMONDBTM",
                        "itemtype not found or not an instance of CommonDBTM",
                    )
                    .into();
                };
                let parent = Parent { itemtype: t, id };
                read::get_items(glpi, session, child, Some(parent), params, options, api_url).into()
            }
        },
        "POST" => {
            let outcome = create::create_items(glpi, session, t, params, api_url, ctx.decode);
            Outcome {
                reply: outcome.reply,
                created: outcome.created_any.then_some(t),
            }
        }
        "PUT" | "PATCH" => update::update_items(glpi, session, t, id, params, api_url).into(),
        "DELETE" => update::delete_items(glpi, session, t, id, params, api_url).into(),
        _ => Reply::error(
            api_url,
            405,
            "ERROR_METHOD_NOT_ALLOWED",
            "Method Not Allowed",
        )
        .into(),
    }
}

/// `checkAppToken`: required when the API client has one; sending one to a
/// client without a token is also wrong.
fn check_app_token(
    shared: &Shared,
    req: &ApiRequest<'_>,
    params: &Map<String, Value>,
) -> Result<(), Reply> {
    let sent = req
        .header("app-token")
        .map(str::to_owned)
        .or_else(|| params.get("app_token").and_then(as_text))
        .filter(|t| !t.is_empty());
    let api_url = shared.api_url.as_str();
    match (&shared.config.app_token, sent) {
        (None, None) => Ok(()),
        (Some(_), None) => Err(Reply::error(
            api_url,
            400,
            "ERROR_APP_TOKEN_PARAMETERS_MISSING",
            "missing parameter app_token",
        )),
        (Some(expected), Some(sent)) if *expected == sent => Ok(()),
        _ => Err(Reply::error(
            api_url,
            400,
            "ERROR_WRONG_APP_TOKEN_PARAMETER",
            "parameter app_token seems wrong",
        )),
    }
}

fn init_session(
    glpi: &mut Glpi,
    req: &ApiRequest<'_>,
    params: &Map<String, Value>,
    api_url: &str,
) -> Reply {
    let from_header = req
        .header("authorization")
        .filter(|a| a.contains("user_token"))
        .and_then(|a| a.split(' ').nth(1))
        .map(str::to_owned);
    let user_token = from_header.or_else(|| params.get("user_token").and_then(as_text));
    let basic = req
        .header("authorization")
        .is_some_and(|a| a.trim_start().to_ascii_lowercase().starts_with("basic "));
    let login = params.contains_key("login") || params.contains_key("password") || basic;
    let Some(user_token) = user_token.filter(|t| !t.is_empty()) else {
        if login {
            return Reply::error(
                api_url,
                400,
                "ERROR_LOGIN_WITH_CREDENTIALS_DISABLED",
                "usage of initSession resource with credentials is disabled",
            );
        }
        return Reply::error(
            api_url,
            400,
            "ERROR_LOGIN_PARAMETERS_MISSING",
            "parameter(s) login, password or user_token are missing",
        );
    };
    let Some((user_id, login)) = glpi
        .api_users
        .iter()
        .find(|(_, _, token)| *token == user_token)
        .map(|(id, login, _)| (*id, login.clone()))
    else {
        return Reply::error(
            api_url,
            401,
            "ERROR_GLPI_LOGIN_USER_TOKEN",
            "parameter user_token seems invalid",
        );
    };
    let session = Session {
        user_id,
        login,
        active_entity: 0,
        recursive: true,
        active_entities: glpi.entities_under(0, true),
    };
    let full = full_session(glpi, &session);
    let token = glpi.sessions.open(session);
    let mut body = json!({ "session_token": token });
    if params::is_true(params.get("get_full_session")) {
        body["session"] = full;
    }
    Reply::json(200, body)
}

fn change_active_entities(glpi: &mut Glpi, params: &Map<String, Value>, ctx: &Ctx<'_>) -> Reply {
    let recursive = match params.get("is_recursive") {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Reply::error(ctx.api_url, 400, "ERROR", "Bad Request"),
    };
    // Omitted = "all"; GLPI applies intval(), so "all" as a string is root.
    let (entity, recursive) = match params.get("entities_id") {
        None => (0, true),
        Some(v) => (as_int(v).unwrap_or(0), recursive),
    };
    if !glpi.entities.contains(&entity) {
        return Reply::json(200, Value::Bool(false));
    }
    let entities = glpi.entities_under(entity, recursive);
    if let Some(session) = glpi.sessions.get_mut(&ctx.token) {
        session.active_entity = entity;
        session.recursive = recursive;
        session.active_entities = entities;
    }
    Reply::json(200, Value::Bool(true))
}

fn profile() -> Value {
    json!({"id": 4, "name": "Super-Admin", "interface": "central", "entities": [{"id": 0, "name": "Root entity", "is_recursive": 1}]})
}

fn full_session(glpi: &Glpi, session: &Session) -> Value {
    json!({
        "glpiID": session.user_id,
        "glpiname": session.login,
        "glpiactive_entity": session.active_entity,
        "glpiactive_entity_recursive": session.recursive,
        "glpiactive_entity_name": glpi.entity_name(session.active_entity),
        "glpiactiveentities": session.active_entities,
        "glpidefault_entity": 0,
        "glpilist_limit": read::LIST_LIMIT,
        "glpiactiveprofile": profile(),
    })
}

fn options_reply(req: &ApiRequest<'_>) -> Reply {
    let mut reply = Reply::json(200, Value::Null);
    if req.header("access-control-request-method").is_some() {
        reply = reply.with_header(
            "Access-Control-Allow-Methods",
            "PUT, GET, POST, DELETE, OPTIONS",
        );
    }
    if req.header("access-control-request-headers").is_some() {
        reply = reply.with_header(
            "Access-Control-Allow-Headers",
            "origin, content-type, accept, session-token, authorization, app-token",
        );
    }
    reply
}

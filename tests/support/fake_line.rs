//! A stand-in for LINE's API on a loopback port: it records every request
//! and answers with responses a test scripts per path, or `200 {}`. Rich
//! menus, their images, aliases and the default menu are kept as LINE
//! keeps them (see [`RichMenus`]) where no script answers, so a test can
//! see what a call left behind at "LINE".

use std::{
    collections::{HashMap, VecDeque},
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;

/// Marks a scripted answer that drops the connection (not a real status).
const RESET: u16 = 999;

/// One request LINE's stand-in received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: Method,
    /// Path and query.
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// When it arrived.
    pub received: std::time::Instant,
}

/// A scripted answer.
#[derive(Debug, Clone)]
pub struct Scripted {
    pub status: StatusCode,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

#[derive(Default)]
struct State {
    requests: Vec<Recorded>,
    scripts: HashMap<String, VecDeque<Scripted>>,
    rich_menus: RichMenus,
}

/// The fake LINE server. Dropping it stops accepting connections.
pub struct FakeLine {
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl FakeLine {
    pub async fn start() -> Self {
        let state = Arc::new(Mutex::new(State::default()));
        let shared = state.clone();
        let (addr, task) = super::http_stub::serve(move |request: Request<Incoming>| {
            let state = shared.clone();
            // A scripted status 0 drops the connection without answering.
            async move { answer(&state, request).await }
        })
        .await;
        Self { addr, state, task }
    }

    /// Base URL to configure as a LINE API base.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Queues an answer for the next request to `path` (without query).
    /// Status 0 drops the connection instead of answering.
    pub fn script(&self, path: &str, status: u16, headers: &[(&str, &str)], body: &str) {
        self.script_bytes(path, status, headers, Bytes::from(body.to_owned()));
    }

    /// As [`FakeLine::script`], with a body of any bytes (an image).
    pub fn script_bytes(&self, path: &str, status: u16, headers: &[(&str, &str)], body: Bytes) {
        let status = if status == 0 { RESET } else { status };
        let scripted = Scripted {
            status: StatusCode::from_u16(status).expect("a valid status code"),
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            body,
        };
        self.state
            .lock()
            .unwrap()
            .scripts
            .entry(path.to_owned())
            .or_default()
            .push_back(scripted);
    }

    /// Every request received so far, in arrival order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.state.lock().unwrap().requests.clone()
    }

    /// The ids of the rich menus "LINE" holds now, in creation order.
    pub fn rich_menu_ids(&self) -> Vec<String> {
        let state = self.state.lock().unwrap();
        state
            .rich_menus
            .menus
            .iter()
            .map(|m| m.id.clone())
            .collect()
    }

    /// The image "LINE" holds for a menu: content type and bytes.
    pub fn rich_menu_image(&self, id: &str) -> Option<(String, Bytes)> {
        let state = self.state.lock().unwrap();
        state
            .rich_menus
            .menus
            .iter()
            .find(|m| m.id == id)
            .and_then(|m| m.image.clone())
    }

    /// The aliases "LINE" holds: (alias, rich menu id).
    pub fn rich_menu_aliases(&self) -> Vec<(String, String)> {
        self.state.lock().unwrap().rich_menus.aliases.clone()
    }

    /// The default rich menu, if one is set.
    pub fn default_rich_menu(&self) -> Option<String> {
        self.state.lock().unwrap().rich_menus.default.clone()
    }

    /// The id the next created rich menu will get.
    pub fn next_rich_menu_id(&self) -> String {
        RichMenus::id(self.state.lock().unwrap().rich_menus.created + 1)
    }

    /// Puts a menu in place as if created earlier; returns its id.
    pub fn add_rich_menu(&self, menu: serde_json::Value) -> String {
        self.state.lock().unwrap().rich_menus.create(menu)
    }

    /// Puts an alias in place as if created earlier.
    pub fn add_rich_menu_alias(&self, alias: &str, rich_menu_id: &str) {
        let mut state = self.state.lock().unwrap();
        state
            .rich_menus
            .aliases
            .push((alias.to_owned(), rich_menu_id.to_owned()));
    }
}

impl Drop for FakeLine {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn answer(state: &Mutex<State>, request: Request<Incoming>) -> Option<Response<Full<Bytes>>> {
    let (parts, body) = request.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let path = parts.uri.path().to_owned();
    let content_type = parts
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let scripted = {
        let mut state = state.lock().unwrap();
        let body_for_menus = body.clone();
        state.requests.push(Recorded {
            method: parts.method.clone(),
            path: parts
                .uri
                .path_and_query()
                .map(|p| p.as_str().to_owned())
                .unwrap_or_default(),
            headers: parts.headers.clone(),
            body,
            received: std::time::Instant::now(),
        });
        let scripted = state.scripts.get_mut(&path).and_then(VecDeque::pop_front);
        scripted.or_else(|| {
            state
                .rich_menus
                .answer(&parts.method, &path, &content_type, body_for_menus)
        })
    };
    let scripted = scripted.unwrap_or(Scripted {
        status: StatusCode::OK,
        headers: Vec::new(),
        body: Bytes::from_static(b"{}"),
    });
    if scripted.status.as_u16() == RESET {
        return None;
    }
    let mut response = Response::new(Full::new(scripted.body));
    *response.status_mut() = scripted.status;
    let headers = response.headers_mut();
    headers.insert("content-type", "application/json".parse().unwrap());
    headers.insert("x-line-request-id", uuid_like().parse().unwrap());
    for (name, value) in scripted.headers {
        headers.insert(
            http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            value.parse().unwrap(),
        );
    }
    Some(response)
}

/// A request id in LINE's format (a UUID).
fn uuid_like() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// One rich menu as "LINE" keeps it.
#[derive(Debug, Clone)]
struct StoredMenu {
    id: String,
    json: serde_json::Value,
    image: Option<(String, Bytes)>,
}

/// Rich menus, images, aliases and the default menu, answered as LINE's
/// descriptions say (404 for what does not exist, 400 for a second image
/// or an alias taken), for requests no script answered.
#[derive(Debug, Default)]
struct RichMenus {
    menus: Vec<StoredMenu>,
    aliases: Vec<(String, String)>,
    default: Option<String>,
    created: u64,
}

fn json_answer(status: u16, body: serde_json::Value) -> Scripted {
    Scripted {
        status: StatusCode::from_u16(status).expect("a valid status code"),
        headers: Vec::new(),
        body: Bytes::from(body.to_string()),
    }
}

fn not_found() -> Scripted {
    json_answer(404, serde_json::json!({ "message": "Not found" }))
}

impl RichMenus {
    /// LINE's form of a rich menu id, numbered in creation order.
    fn id(n: u64) -> String {
        format!("richmenu-{n:032x}")
    }

    fn create(&mut self, json: serde_json::Value) -> String {
        self.created += 1;
        let id = Self::id(self.created);
        self.menus.push(StoredMenu {
            id: id.clone(),
            json,
            image: None,
        });
        id
    }

    fn menu(&mut self, id: &str) -> Option<&mut StoredMenu> {
        self.menus.iter_mut().find(|m| m.id == id)
    }

    fn shown(menu: &StoredMenu) -> serde_json::Value {
        let mut json = menu.json.clone();
        json["richMenuId"] = serde_json::json!(menu.id);
        json
    }

    fn answer(
        &mut self,
        method: &Method,
        path: &str,
        content_type: &str,
        body: Bytes,
    ) -> Option<Scripted> {
        use serde_json::json;
        let rest = path.strip_prefix("/v2/bot/")?;
        let segments: Vec<&str> = rest.split('/').collect();
        let ok = || json_answer(200, json!({}));
        let answer = match (method.as_str(), segments.as_slice()) {
            ("POST", ["richmenu"]) => {
                let menu = serde_json::from_slice(&body).unwrap_or_default();
                json_answer(200, json!({ "richMenuId": self.create(menu) }))
            }
            ("GET", ["richmenu", "list"]) => json_answer(
                200,
                json!({ "richmenus": self.menus.iter().map(Self::shown).collect::<Vec<_>>() }),
            ),
            ("GET", ["richmenu", "alias", "list"]) => json_answer(
                200,
                json!({ "aliases": self.aliases.iter().map(|(a, m)| json!({
                    "richMenuAliasId": a, "richMenuId": m })).collect::<Vec<_>>() }),
            ),
            ("POST", ["richmenu", "alias"]) => {
                let request: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                let alias = request["richMenuAliasId"].as_str().unwrap_or_default();
                let menu = request["richMenuId"].as_str().unwrap_or_default();
                if self.aliases.iter().any(|(a, _)| a == alias) {
                    json_answer(400, json!({ "message": "conflict richmenu alias id" }))
                } else if self.menu(menu).is_none() {
                    json_answer(400, json!({ "message": "richmenu not found" }))
                } else {
                    self.aliases.push((alias.to_owned(), menu.to_owned()));
                    ok()
                }
            }
            (method, ["richmenu", "alias", alias]) => {
                let at = self.aliases.iter().position(|(a, _)| a == alias);
                match (method, at) {
                    (_, None) => not_found(),
                    ("GET", Some(at)) => json_answer(
                        200,
                        json!({ "richMenuAliasId": alias, "richMenuId": self.aliases[at].1 }),
                    ),
                    ("POST", Some(at)) => {
                        let request: serde_json::Value =
                            serde_json::from_slice(&body).unwrap_or_default();
                        let menu = request["richMenuId"]
                            .as_str()
                            .unwrap_or_default()
                            .to_owned();
                        if self.menu(&menu).is_none() {
                            json_answer(400, json!({ "message": "richmenu not found" }))
                        } else {
                            self.aliases[at].1 = menu;
                            ok()
                        }
                    }
                    ("DELETE", Some(at)) => {
                        self.aliases.remove(at);
                        ok()
                    }
                    _ => return None,
                }
            }
            (_, ["richmenu", "validate" | "bulk" | "batch" | "progress", ..]) => return None,
            ("GET", ["richmenu", id]) => match self.menu(id) {
                Some(menu) => json_answer(200, Self::shown(menu)),
                None => not_found(),
            },
            ("DELETE", ["richmenu", id]) => match self.menus.iter().position(|m| m.id == *id) {
                Some(at) => {
                    self.menus.remove(at);
                    if self.default.as_deref() == Some(*id) {
                        self.default = None;
                    }
                    ok()
                }
                None => not_found(),
            },
            ("POST", ["richmenu", id, "content"]) => match self.menu(id) {
                Some(menu) if menu.image.is_some() => json_answer(
                    400,
                    json!({ "message": "An image has already been uploaded to the richmenu" }),
                ),
                Some(menu) => {
                    menu.image = Some((content_type.to_owned(), body));
                    ok()
                }
                None => not_found(),
            },
            ("GET", ["richmenu", id, "content"]) => {
                match self.menu(id).and_then(|m| m.image.clone()) {
                    Some((content_type, bytes)) => Scripted {
                        status: StatusCode::OK,
                        headers: vec![("content-type".into(), content_type)],
                        body: bytes,
                    },
                    None => not_found(),
                }
            }
            ("POST", ["user", "all", "richmenu", id]) => match self.menu(id) {
                Some(menu) if menu.image.is_none() => json_answer(
                    400,
                    json!({ "message": "must upload richmenu image before applying it to user" }),
                ),
                Some(_) => {
                    self.default = Some((*id).to_owned());
                    ok()
                }
                None => not_found(),
            },
            ("GET", ["user", "all", "richmenu"]) => match &self.default {
                Some(id) => json_answer(200, json!({ "richMenuId": id })),
                None => json_answer(404, json!({ "message": "no default richmenu" })),
            },
            ("DELETE", ["user", "all", "richmenu"]) => {
                self.default = None;
                ok()
            }
            _ => return None,
        };
        Some(answer)
    }
}

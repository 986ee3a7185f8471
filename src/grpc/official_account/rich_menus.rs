//! Rich menus: create (LINE's validator first), read, list, delete; the
//! default menu; links to users (one, or up to 500 in bulk); aliases; and
//! batches over every user. The menu's typed form is checked here against
//! LINE's documented limits and turned into LINE's JSON; LINE's answers
//! are turned back, keeping LINE's JSON beside the typed fields.

use serde_json::{Value, json};
use tonic::Status;

use super::{Violations, channel_id, line_for, only_channel, path_id};
use crate::{
    line::api::{self, RichMenuBatchOperation},
    proto::v1::{self as pb, rich_menu_action::Kind},
    services::Services,
    time::timestamp,
};

/// LINE's bounds of a rich menu's size (and of its image).
const MIN_WIDTH: i32 = 800;
const MAX_WIDTH: i32 = 2500;
const MIN_HEIGHT: i32 = 250;
/// Width / height at least 1.45, as hundredths.
const MIN_ASPECT_PERCENT: i64 = 145;
const MAX_AREAS: usize = 20;
const MAX_NAME: usize = 300;
const MAX_CHAT_BAR_TEXT: usize = 14;
const MAX_LABEL: usize = 20;
const MAX_DATA: usize = 300;
const MAX_TEXT: usize = 300;
const MAX_URI: usize = 1000;
/// A raw menu or action is LINE's JSON; this bounds what we pass on.
pub(super) const MAX_JSON: usize = 64 * 1024;
const MAX_LINKED_USERS: usize = 500;
const MAX_BATCH_OPERATIONS: usize = 1000;
const INPUT_OPTIONS: &[&str] = &["closeRichMenu", "openRichMenu", "openKeyboard", "openVoice"];
const URI_SCHEMES: &[&str] = &["http://", "https://", "line://", "tel:"];

fn chars(value: &str) -> usize {
    value.chars().count()
}

fn bounded(violations: &mut Violations, field: &str, value: &str, min: usize, max: usize) {
    let count = chars(value);
    if count < min || count > max {
        let range = if min == 0 {
            format!("at most {max}")
        } else {
            format!("{min}-{max}")
        };
        violations.add(field, format!("must be {range} characters; got {count}"));
    }
}

/// LINE's alias ids: `[a-z0-9_-]{1,32}`.
pub(super) fn alias_id(violations: &mut Violations, field: &str, value: &str) -> Option<String> {
    let valid = (1..=32).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if !valid {
        violations.add(field, "must be 1-32 characters of a-z, 0-9, `_` and `-`");
        return None;
    }
    Some(value.to_owned())
}

/// A menu's width and height in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Size {
    pub width: i64,
    pub height: i64,
}

fn size(violations: &mut Violations, field: &str, size: Option<&pb::RichMenuSize>) -> Option<Size> {
    let Some(pb::RichMenuSize { width, height }) = size.copied() else {
        violations.add(field, "is required (width and height in pixels)");
        return None;
    };
    let mut valid = true;
    if !(MIN_WIDTH..=MAX_WIDTH).contains(&width) {
        violations.add(
            format!("{field}.width"),
            format!("must be {MIN_WIDTH}-{MAX_WIDTH} pixels; got {width}"),
        );
        valid = false;
    }
    if height < MIN_HEIGHT {
        violations.add(
            format!("{field}.height"),
            format!("must be at least {MIN_HEIGHT} pixels; got {height}"),
        );
        valid = false;
    }
    if valid && i64::from(width) * 100 < i64::from(height) * MIN_ASPECT_PERCENT {
        violations.add(
            field,
            format!("width / height must be at least 1.45; {width}x{height} is taller"),
        );
        valid = false;
    }
    valid.then_some(Size {
        width: width.into(),
        height: height.into(),
    })
}

fn bounds(
    violations: &mut Violations,
    field: &str,
    bounds: Option<&pb::RichMenuBounds>,
    menu: Option<Size>,
) -> Value {
    let Some(pb::RichMenuBounds {
        x,
        y,
        width,
        height,
    }) = bounds.copied()
    else {
        violations.add(field, "is required");
        return Value::Null;
    };
    if x < 0 || y < 0 {
        violations.add(field, "x and y must be 0 or more");
    }
    if width < 1 || height < 1 {
        violations.add(field, "width and height must be 1 or more");
    }
    if let Some(menu) = menu
        && (i64::from(x) + i64::from(width) > menu.width
            || i64::from(y) + i64::from(height) > menu.height)
    {
        violations.add(
            field,
            format!(
                "must lie inside the menu ({}x{}): x + width and y + height at most its width and height",
                menu.width, menu.height
            ),
        );
    }
    json!({ "x": x, "y": y, "width": width, "height": height })
}

/// LINE's JSON of one action, or `Null` after recording why not.
fn action(violations: &mut Violations, field: &str, action: Option<&pb::RichMenuAction>) -> Value {
    let Some(pb::RichMenuAction { label, kind }) = action else {
        violations.add(field, "is required");
        return Value::Null;
    };
    bounded(violations, &format!("{field}.label"), label, 0, MAX_LABEL);
    let mut object = match kind {
        None => {
            violations.add(
                field,
                "must be one of postback, message, uri, rich_menu_switch or json",
            );
            return Value::Null;
        }
        Some(Kind::Json(text)) => {
            if !label.is_empty() {
                violations.add(
                    format!("{field}.label"),
                    "must be empty with `json` (put `label` in the JSON)",
                );
            }
            return raw_action(violations, &format!("{field}.json"), text);
        }
        Some(Kind::Postback(pb::RichMenuPostbackAction {
            data,
            display_text,
            input_option,
            fill_in_text,
        })) => {
            let f = format!("{field}.postback");
            bounded(violations, &format!("{f}.data"), data, 1, MAX_DATA);
            bounded(
                violations,
                &format!("{f}.display_text"),
                display_text,
                0,
                MAX_TEXT,
            );
            bounded(
                violations,
                &format!("{f}.fill_in_text"),
                fill_in_text,
                0,
                MAX_TEXT,
            );
            if !input_option.is_empty() && !INPUT_OPTIONS.contains(&input_option.as_str()) {
                violations.add(
                    format!("{f}.input_option"),
                    format!("must be one of {}", INPUT_OPTIONS.join(", ")),
                );
            }
            if !fill_in_text.is_empty() && input_option != "openKeyboard" {
                violations.add(
                    format!("{f}.fill_in_text"),
                    "goes with input_option \"openKeyboard\" only",
                );
            }
            let mut object = json!({ "type": "postback", "data": data });
            for (key, value) in [
                ("displayText", display_text),
                ("inputOption", input_option),
                ("fillInText", fill_in_text),
            ] {
                if !value.is_empty() {
                    object[key] = json!(value);
                }
            }
            object
        }
        Some(Kind::Message(pb::RichMenuMessageAction { text })) => {
            bounded(
                violations,
                &format!("{field}.message.text"),
                text,
                1,
                MAX_TEXT,
            );
            json!({ "type": "message", "text": text })
        }
        Some(Kind::Uri(pb::RichMenuUriAction {
            uri,
            alt_uri_desktop,
        })) => {
            let f = format!("{field}.uri");
            bounded(violations, &format!("{f}.uri"), uri, 1, MAX_URI);
            for (name, value) in [("uri", uri), ("alt_uri_desktop", alt_uri_desktop)] {
                if !value.is_empty() && !URI_SCHEMES.iter().any(|s| value.starts_with(s)) {
                    violations.add(
                        format!("{f}.{name}"),
                        "must be an http, https, line or tel URI",
                    );
                }
            }
            bounded(
                violations,
                &format!("{f}.alt_uri_desktop"),
                alt_uri_desktop,
                0,
                MAX_URI,
            );
            let mut object = json!({ "type": "uri", "uri": uri });
            if !alt_uri_desktop.is_empty() {
                object["altUri"] = json!({ "desktop": alt_uri_desktop });
            }
            object
        }
        Some(Kind::RichMenuSwitch(pb::RichMenuSwitchAction {
            rich_menu_alias_id,
            data,
        })) => {
            let f = format!("{field}.rich_menu_switch");
            alias_id(
                violations,
                &format!("{f}.rich_menu_alias_id"),
                rich_menu_alias_id,
            );
            bounded(violations, &format!("{f}.data"), data, 1, MAX_DATA);
            json!({ "type": "richmenuswitch", "richMenuAliasId": rich_menu_alias_id, "data": data })
        }
    };
    if !label.is_empty() {
        object["label"] = json!(label);
    }
    object
}

/// A caller's JSON action: an object with a string `type`.
fn raw_action(violations: &mut Violations, field: &str, text: &str) -> Value {
    if text.len() > MAX_JSON {
        violations.add(field, format!("must be at most {MAX_JSON} bytes"));
        return Value::Null;
    }
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(object)) if object.get("type").is_some_and(Value::is_string) => {
            Value::Object(object)
        }
        Ok(_) => {
            violations.add(field, "must be a JSON object with a string `type`");
            Value::Null
        }
        Err(err) => {
            violations.add(field, format!("is not JSON: {err}"));
            Value::Null
        }
    }
}

/// A menu as LINE's `RichMenuRequest` and its size, from either form of a
/// request's `definition` (`field` is the typed one's name); `None` after
/// recording every violation.
pub(super) fn definition(
    violations: &mut Violations,
    typed: Option<&pb::RichMenu>,
    raw: Option<&str>,
) -> Option<(Value, Option<Size>)> {
    match (typed, raw) {
        (Some(menu), None) => typed_menu(violations, "rich_menu", menu).map(|(v, s)| (v, Some(s))),
        (None, Some(text)) => raw_menu(violations, text),
        _ => {
            violations.add("definition", "must be rich_menu or rich_menu_json");
            None
        }
    }
}

fn typed_menu(
    violations: &mut Violations,
    field: &str,
    menu: &pb::RichMenu,
) -> Option<(Value, Size)> {
    let pb::RichMenu {
        // LINE assigns the id, and line_json is LINE's answer: both are
        // ignored in requests, so a menu read back can be sent again.
        rich_menu_id: _,
        size: menu_size,
        selected,
        name,
        chat_bar_text,
        areas,
        line_json: _,
    } = menu;
    let before = violations.count();
    let menu_size = size(violations, &format!("{field}.size"), menu_size.as_ref());
    bounded(violations, &format!("{field}.name"), name, 1, MAX_NAME);
    bounded(
        violations,
        &format!("{field}.chat_bar_text"),
        chat_bar_text,
        1,
        MAX_CHAT_BAR_TEXT,
    );
    if areas.len() > MAX_AREAS {
        violations.add(
            format!("{field}.areas"),
            format!("must be at most {MAX_AREAS}; got {}", areas.len()),
        );
    }
    let areas: Vec<Value> = areas
        .iter()
        .enumerate()
        .map(
            |(
                i,
                pb::RichMenuArea {
                    bounds: b,
                    action: a,
                },
            )| {
                let f = format!("{field}.areas[{i}]");
                json!({
                    "bounds": bounds(violations, &format!("{f}.bounds"), b.as_ref(), menu_size),
                    "action": action(violations, &format!("{f}.action"), a.as_ref()),
                })
            },
        )
        .collect();
    let menu_size = menu_size?;
    (violations.count() == before).then(|| {
        (
            json!({
                "size": { "width": menu_size.width, "height": menu_size.height },
                "selected": selected,
                "name": name,
                "chatBarText": chat_bar_text,
                "areas": areas,
            }),
            menu_size,
        )
    })
}

/// LINE's JSON as the caller wrote it; its size, when it has one that
/// reads as two integers.
fn raw_menu(violations: &mut Violations, text: &str) -> Option<(Value, Option<Size>)> {
    let field = "rich_menu_json";
    if text.len() > MAX_JSON {
        violations.add(field, format!("must be at most {MAX_JSON} bytes"));
        return None;
    }
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(object)) => {
            let size = object.get("size").and_then(|size| {
                Some(Size {
                    width: size.get("width")?.as_i64()?,
                    height: size.get("height")?.as_i64()?,
                })
            });
            Some((Value::Object(object), size))
        }
        Ok(_) => {
            violations.add(field, "must be a JSON object (LINE's RichMenuRequest)");
            None
        }
        Err(err) => {
            violations.add(field, format!("is not JSON: {err}"));
            None
        }
    }
}

/// LINE's menu as ours: every action typed when it is one of ours with
/// nothing more, else kept as LINE's JSON.
pub(super) fn to_proto(menu: api::RichMenu) -> pb::RichMenu {
    let api::RichMenu {
        rich_menu_id,
        size,
        selected,
        name,
        chat_bar_text,
        areas,
        json,
    } = menu;
    let int = |value: i64| i32::try_from(value).unwrap_or(i32::MAX);
    pb::RichMenu {
        rich_menu_id,
        size: Some(pb::RichMenuSize {
            width: int(size.width),
            height: int(size.height),
        }),
        selected,
        name,
        chat_bar_text,
        areas: areas
            .into_iter()
            .map(|api::RichMenuArea { bounds, action }| pb::RichMenuArea {
                bounds: Some(pb::RichMenuBounds {
                    x: int(bounds.x),
                    y: int(bounds.y),
                    width: int(bounds.width),
                    height: int(bounds.height),
                }),
                action: Some(action_to_proto(action)),
            })
            .collect(),
        line_json: json.to_string(),
    }
}

fn action_to_proto(action: Value) -> pb::RichMenuAction {
    let raw = |action: &Value| pb::RichMenuAction {
        label: String::new(),
        kind: Some(Kind::Json(action.to_string())),
    };
    let Some(object) = action.as_object() else {
        return raw(&action);
    };
    let text = |key: &str| object.get(key).and_then(Value::as_str).map(str::to_owned);
    let only = |keys: &[&str]| {
        object
            .keys()
            .all(|k| k == "type" || k == "label" || keys.contains(&k.as_str()))
            && object
                .iter()
                .all(|(k, v)| v.is_string() || (k == "altUri" && v.is_object()))
    };
    let field = |key: &str| text(key).unwrap_or_default();
    let kind = match text("type").as_deref() {
        Some("postback") if only(&["data", "displayText", "inputOption", "fillInText"]) => {
            Kind::Postback(pb::RichMenuPostbackAction {
                data: field("data"),
                display_text: field("displayText"),
                input_option: field("inputOption"),
                fill_in_text: field("fillInText"),
            })
        }
        Some("message") if only(&["text"]) => Kind::Message(pb::RichMenuMessageAction {
            text: field("text"),
        }),
        Some("uri") if only(&["uri", "altUri"]) => {
            let desktop = object.get("altUri").map(|alt| {
                alt.as_object()
                    .filter(|alt| alt.keys().all(|k| k == "desktop"))
                    .and_then(|alt| alt.get("desktop"))
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            });
            match desktop {
                // An altUri of another shape: keep LINE's JSON.
                Some(None) => return raw(&action),
                desktop => Kind::Uri(pb::RichMenuUriAction {
                    uri: field("uri"),
                    alt_uri_desktop: desktop.flatten().unwrap_or_default(),
                }),
            }
        }
        Some("richmenuswitch") if only(&["richMenuAliasId", "data"]) => {
            Kind::RichMenuSwitch(pb::RichMenuSwitchAction {
                rich_menu_alias_id: field("richMenuAliasId"),
                data: field("data"),
            })
        }
        _ => return raw(&action),
    };
    pb::RichMenuAction {
        label: field("label"),
        kind: Some(kind),
    }
}

pub async fn create_rich_menu(
    services: &Services,
    request: pb::CreateRichMenuRequest,
) -> Result<pb::CreateRichMenuResponse, Status> {
    use pb::create_rich_menu_request::Definition;
    let pb::CreateRichMenuRequest {
        channel_id: id,
        definition: menu,
    } = request;
    let mut violations = Violations::new();
    let id = channel_id(&mut violations, &id);
    let (typed, raw) = match &menu {
        Some(Definition::RichMenu(menu)) => (Some(menu), None),
        Some(Definition::RichMenuJson(text)) => (None, Some(text.as_str())),
        None => (None, None),
    };
    let menu = definition(&mut violations, typed, raw);
    violations.into_result()?;
    let (menu, _) = menu.ok_or_else(unrecorded)?;
    let line = line_for(services, id).await?;
    line.validate_rich_menu(&menu).await?;
    Ok(pb::CreateRichMenuResponse {
        rich_menu_id: line.create_rich_menu(&menu).await?,
    })
}

/// A rule refused without recording why: a bug here, not in the request.
pub(super) fn unrecorded() -> Status {
    tracing::error!("a request field was refused without a recorded violation");
    Status::internal("request validation failed unexpectedly")
}

/// `channel_id` and one path id, both checked.
fn channel_and(
    channel: &str,
    field: &str,
    value: &str,
) -> Result<(Option<String>, String), Status> {
    let mut violations = Violations::new();
    let id = channel_id(&mut violations, channel);
    let value = path_id(&mut violations, field, value);
    violations.into_result()?;
    Ok((id, value.ok_or_else(unrecorded)?))
}

pub async fn get_rich_menu(
    services: &Services,
    request: pb::GetRichMenuRequest,
) -> Result<pb::GetRichMenuResponse, Status> {
    let pb::GetRichMenuRequest {
        channel_id: id,
        rich_menu_id,
    } = request;
    let (id, menu) = channel_and(&id, "rich_menu_id", &rich_menu_id)?;
    let line = line_for(services, id).await?;
    Ok(pb::GetRichMenuResponse {
        rich_menu: Some(to_proto(line.rich_menu(&menu).await?)),
    })
}

pub async fn list_rich_menus(
    services: &Services,
    request: pb::ListRichMenusRequest,
) -> Result<pb::ListRichMenusResponse, Status> {
    let pb::ListRichMenusRequest { channel_id: id } = request;
    let line = line_for(services, only_channel(&id)?).await?;
    Ok(pb::ListRichMenusResponse {
        rich_menus: line.rich_menus().await?.into_iter().map(to_proto).collect(),
    })
}

pub async fn delete_rich_menu(
    services: &Services,
    request: pb::DeleteRichMenuRequest,
) -> Result<pb::DeleteRichMenuResponse, Status> {
    let pb::DeleteRichMenuRequest {
        channel_id: id,
        rich_menu_id,
    } = request;
    let (id, menu) = channel_and(&id, "rich_menu_id", &rich_menu_id)?;
    line_for(services, id)
        .await?
        .delete_rich_menu(&menu)
        .await?;
    Ok(pb::DeleteRichMenuResponse {})
}

pub async fn set_default_rich_menu(
    services: &Services,
    request: pb::SetDefaultRichMenuRequest,
) -> Result<pb::SetDefaultRichMenuResponse, Status> {
    let pb::SetDefaultRichMenuRequest {
        channel_id: id,
        rich_menu_id,
    } = request;
    let (id, menu) = channel_and(&id, "rich_menu_id", &rich_menu_id)?;
    line_for(services, id)
        .await?
        .set_default_rich_menu(&menu)
        .await?;
    Ok(pb::SetDefaultRichMenuResponse {})
}

pub async fn get_default_rich_menu(
    services: &Services,
    request: pb::GetDefaultRichMenuRequest,
) -> Result<pb::GetDefaultRichMenuResponse, Status> {
    let pb::GetDefaultRichMenuRequest { channel_id: id } = request;
    let line = line_for(services, only_channel(&id)?).await?;
    Ok(pb::GetDefaultRichMenuResponse {
        rich_menu_id: line.default_rich_menu().await?,
    })
}

pub async fn clear_default_rich_menu(
    services: &Services,
    request: pb::ClearDefaultRichMenuRequest,
) -> Result<pb::ClearDefaultRichMenuResponse, Status> {
    let pb::ClearDefaultRichMenuRequest { channel_id: id } = request;
    line_for(services, only_channel(&id)?)
        .await?
        .clear_default_rich_menu()
        .await?;
    Ok(pb::ClearDefaultRichMenuResponse {})
}

/// 1-500 distinct user ids, each a path segment.
fn user_ids(violations: &mut Violations, ids: &[String]) -> Vec<String> {
    if ids.is_empty() || ids.len() > MAX_LINKED_USERS {
        violations.add(
            "user_ids",
            format!("must be 1-{MAX_LINKED_USERS} user ids; got {}", ids.len()),
        );
        return Vec::new();
    }
    let mut seen = std::collections::HashSet::new();
    ids.iter()
        .enumerate()
        .filter_map(|(i, id)| {
            let id = path_id(violations, &format!("user_ids[{i}]"), id)?;
            if !seen.insert(id.clone()) {
                violations.add(format!("user_ids[{i}]"), "is repeated");
            }
            Some(id)
        })
        .collect()
}

pub async fn link_rich_menu(
    services: &Services,
    request: pb::LinkRichMenuRequest,
) -> Result<pb::LinkRichMenuResponse, Status> {
    let pb::LinkRichMenuRequest {
        channel_id: id,
        rich_menu_id,
        user_ids: users,
    } = request;
    let mut violations = Violations::new();
    let id = channel_id(&mut violations, &id);
    let menu = path_id(&mut violations, "rich_menu_id", &rich_menu_id);
    let users = user_ids(&mut violations, &users);
    violations.into_result()?;
    let menu = menu.ok_or_else(unrecorded)?;
    let line = line_for(services, id).await?;
    let asynchronous = match users.as_slice() {
        [user] => {
            line.link_rich_menu(user, &menu).await?;
            false
        }
        users => {
            line.link_rich_menu_to_users(&menu, users).await?;
            true
        }
    };
    Ok(pb::LinkRichMenuResponse { asynchronous })
}

pub async fn unlink_rich_menu(
    services: &Services,
    request: pb::UnlinkRichMenuRequest,
) -> Result<pb::UnlinkRichMenuResponse, Status> {
    let pb::UnlinkRichMenuRequest {
        channel_id: id,
        user_ids: users,
    } = request;
    let mut violations = Violations::new();
    let id = channel_id(&mut violations, &id);
    let users = user_ids(&mut violations, &users);
    violations.into_result()?;
    let line = line_for(services, id).await?;
    let asynchronous = match users.as_slice() {
        [user] => {
            line.unlink_rich_menu(user).await?;
            false
        }
        users => {
            line.unlink_rich_menu_from_users(users).await?;
            true
        }
    };
    Ok(pb::UnlinkRichMenuResponse { asynchronous })
}

pub async fn get_user_rich_menu(
    services: &Services,
    request: pb::GetUserRichMenuRequest,
) -> Result<pb::GetUserRichMenuResponse, Status> {
    let pb::GetUserRichMenuRequest {
        channel_id: id,
        user_id,
    } = request;
    let (id, user) = channel_and(&id, "user_id", &user_id)?;
    Ok(pb::GetUserRichMenuResponse {
        rich_menu_id: line_for(services, id).await?.user_rich_menu(&user).await?,
    })
}

/// `channel_id`, an alias id and a rich menu id, all checked.
fn alias_request(
    channel: &str,
    alias: &str,
    menu: &str,
) -> Result<(Option<String>, String, String), Status> {
    let mut violations = Violations::new();
    let id = channel_id(&mut violations, channel);
    let alias = alias_id(&mut violations, "rich_menu_alias_id", alias);
    let menu = path_id(&mut violations, "rich_menu_id", menu);
    violations.into_result()?;
    Ok((
        id,
        alias.ok_or_else(unrecorded)?,
        menu.ok_or_else(unrecorded)?,
    ))
}

pub async fn create_rich_menu_alias(
    services: &Services,
    request: pb::CreateRichMenuAliasRequest,
) -> Result<pb::CreateRichMenuAliasResponse, Status> {
    let pb::CreateRichMenuAliasRequest {
        channel_id: id,
        rich_menu_alias_id,
        rich_menu_id,
    } = request;
    let (id, alias, menu) = alias_request(&id, &rich_menu_alias_id, &rich_menu_id)?;
    line_for(services, id)
        .await?
        .create_rich_menu_alias(&alias, &menu)
        .await?;
    Ok(pb::CreateRichMenuAliasResponse {})
}

pub async fn update_rich_menu_alias(
    services: &Services,
    request: pb::UpdateRichMenuAliasRequest,
) -> Result<pb::UpdateRichMenuAliasResponse, Status> {
    let pb::UpdateRichMenuAliasRequest {
        channel_id: id,
        rich_menu_alias_id,
        rich_menu_id,
    } = request;
    let (id, alias, menu) = alias_request(&id, &rich_menu_alias_id, &rich_menu_id)?;
    line_for(services, id)
        .await?
        .update_rich_menu_alias(&alias, &menu)
        .await?;
    Ok(pb::UpdateRichMenuAliasResponse {})
}

pub async fn delete_rich_menu_alias(
    services: &Services,
    request: pb::DeleteRichMenuAliasRequest,
) -> Result<pb::DeleteRichMenuAliasResponse, Status> {
    let pb::DeleteRichMenuAliasRequest {
        channel_id: id,
        rich_menu_alias_id,
    } = request;
    let mut violations = Violations::new();
    let id = channel_id(&mut violations, &id);
    let alias = alias_id(&mut violations, "rich_menu_alias_id", &rich_menu_alias_id);
    violations.into_result()?;
    let alias = alias.ok_or_else(unrecorded)?;
    line_for(services, id)
        .await?
        .delete_rich_menu_alias(&alias)
        .await?;
    Ok(pb::DeleteRichMenuAliasResponse {})
}

pub async fn list_rich_menu_aliases(
    services: &Services,
    request: pb::ListRichMenuAliasesRequest,
) -> Result<pb::ListRichMenuAliasesResponse, Status> {
    let pb::ListRichMenuAliasesRequest { channel_id: id } = request;
    let line = line_for(services, only_channel(&id)?).await?;
    let aliases = line
        .rich_menu_aliases()
        .await?
        .into_iter()
        .map(
            |api::RichMenuAlias {
                 rich_menu_alias_id,
                 rich_menu_id,
             }| pb::RichMenuAlias {
                rich_menu_alias_id,
                rich_menu_id,
            },
        )
        .collect();
    Ok(pb::ListRichMenuAliasesResponse { aliases })
}

fn batch_operation(
    violations: &mut Violations,
    field: &str,
    operation: &pb::RichMenuBatchOperation,
) -> Option<RichMenuBatchOperation> {
    use pb::rich_menu_batch_operation::Operation;
    match &operation.operation {
        Some(Operation::Link(pb::RichMenuBatchLink {
            from_rich_menu_id,
            to_rich_menu_id,
        })) => {
            let from = path_id(
                violations,
                &format!("{field}.link.from_rich_menu_id"),
                from_rich_menu_id,
            );
            let to = path_id(
                violations,
                &format!("{field}.link.to_rich_menu_id"),
                to_rich_menu_id,
            );
            Some(RichMenuBatchOperation::Link {
                from: from?,
                to: to?,
            })
        }
        Some(Operation::Unlink(pb::RichMenuBatchUnlink { from_rich_menu_id })) => {
            let from = path_id(
                violations,
                &format!("{field}.unlink.from_rich_menu_id"),
                from_rich_menu_id,
            );
            Some(RichMenuBatchOperation::Unlink { from: from? })
        }
        Some(Operation::UnlinkAll(pb::RichMenuBatchUnlinkAll {})) => {
            Some(RichMenuBatchOperation::UnlinkAll)
        }
        None => {
            violations.add(field, "must be link, unlink or unlink_all");
            None
        }
    }
}

pub async fn start_rich_menu_batch(
    services: &Services,
    request: pb::StartRichMenuBatchRequest,
) -> Result<pb::StartRichMenuBatchResponse, Status> {
    let pb::StartRichMenuBatchRequest {
        channel_id: id,
        operations,
        resume_request_key,
    } = request;
    let mut violations = Violations::new();
    let id = channel_id(&mut violations, &id);
    if operations.is_empty() || operations.len() > MAX_BATCH_OPERATIONS {
        violations.add(
            "operations",
            format!(
                "must be 1-{MAX_BATCH_OPERATIONS} operations; got {}",
                operations.len()
            ),
        );
    }
    let operations: Vec<_> = operations
        .iter()
        .take(MAX_BATCH_OPERATIONS)
        .enumerate()
        .filter_map(|(i, op)| batch_operation(&mut violations, &format!("operations[{i}]"), op))
        .collect();
    let key_valid = resume_request_key.len() <= 100
        && resume_request_key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if !key_valid {
        violations.add(
            "resume_request_key",
            "must be empty or 1-100 characters of a-z, A-Z, 0-9, `_` and `-`",
        );
    }
    violations.into_result()?;
    let key = (!resume_request_key.is_empty()).then_some(resume_request_key.as_str());
    let body = api::rich_menu_batch_body(&operations, key);
    let line = line_for(services, id).await?;
    line.validate_rich_menu_batch(&body).await?;
    Ok(pb::StartRichMenuBatchResponse {
        request_id: line.rich_menu_batch(&body).await?,
    })
}

pub async fn get_rich_menu_batch_progress(
    services: &Services,
    request: pb::GetRichMenuBatchProgressRequest,
) -> Result<pb::GetRichMenuBatchProgressResponse, Status> {
    let pb::GetRichMenuBatchProgressRequest {
        channel_id: id,
        request_id,
    } = request;
    let (id, request_id) = channel_and(&id, "request_id", &request_id)?;
    let api::RichMenuBatchProgress {
        phase,
        accepted_time,
        completed_time,
    } = line_for(services, id)
        .await?
        .rich_menu_batch_progress(&request_id)
        .await?;
    let phase = match phase.as_str() {
        "ongoing" => pb::RichMenuBatchPhase::Ongoing,
        "succeeded" => pb::RichMenuBatchPhase::Succeeded,
        "failed" => pb::RichMenuBatchPhase::Failed,
        _ => pb::RichMenuBatchPhase::Unspecified,
    };
    Ok(pb::GetRichMenuBatchProgressResponse {
        phase: phase as i32,
        accept_time: iso_time(&accepted_time),
        complete_time: completed_time.as_deref().and_then(iso_time),
    })
}

/// LINE's ISO 8601 time, when it reads as one.
fn iso_time(value: &str) -> Option<prost_types::Timestamp> {
    value.parse::<prost_types::Timestamp>().ok().or_else(|| {
        // Stay total if LINE ever sends Unix milliseconds instead.
        value.parse::<i64>().ok().map(timestamp)
    })
}

#[cfg(test)]
mod tests;

//! PublishRichMenu: validate, create, upload the image, set the alias,
//! make it the default, in that order; a failed step undoes what the
//! steps before it did at LINE, so no half-made menu stays behind, and
//! the status names the step and what was undone.

use bytes::Bytes;
use tonic::Status;

use super::{
    Violations, channel_id,
    images::{check_image, fits},
    line_for,
    rich_menus::{alias_id, definition, unrecorded},
};
use crate::{
    grpc::status::publish_step_failed,
    line::{self, CallError, ChannelClient, TokenSource},
    proto::v1::{self as pb, PublishRichMenuStep as Step},
    services::Services,
    tokens::TokenError,
};

/// What to do with the alias, as found at LINE.
enum Alias {
    None,
    /// Created by this call: deleted to undo.
    Created(String),
    /// Moved here from the menu it pointed at: pointed back to undo.
    Moved {
        alias: String,
        previous: String,
    },
}

fn step_name(step: Step) -> &'static str {
    step.as_str_name()
}

pub async fn publish_rich_menu(
    services: &Services,
    request: pb::PublishRichMenuRequest,
) -> Result<pb::PublishRichMenuResponse, Status> {
    use pb::publish_rich_menu_request::Definition;
    let pb::PublishRichMenuRequest {
        channel_id: id,
        definition: menu,
        image,
        image_content_type,
        make_default,
        rich_menu_alias_id,
    } = request;
    let failed = |status: Status, step: Step, menu: &str, rollback: &str| {
        publish_step_failed(status, step_name(step), menu, rollback)
    };

    // Everything that can be checked here is, before LINE is called.
    let mut violations = Violations::new();
    let id = channel_id(&mut violations, &id);
    let (typed, raw) = match &menu {
        Some(Definition::RichMenu(menu)) => (Some(menu), None),
        Some(Definition::RichMenuJson(text)) => (None, Some(text.as_str())),
        None => (None, None),
    };
    let menu = definition(&mut violations, typed, raw);
    let image = check_image(
        &mut violations,
        "image",
        "image_content_type",
        Bytes::from(image),
        &image_content_type,
    );
    if let (Some((_, size)), Some(image)) = (&menu, &image) {
        match size {
            Some(size) => {
                fits(&mut violations, "image", image, *size);
            }
            None => violations.add(
                "rich_menu_json",
                "must have `size` with integer `width` and `height`, which the image must match",
            ),
        }
    }
    let alias = (!rich_menu_alias_id.is_empty())
        .then(|| alias_id(&mut violations, "rich_menu_alias_id", &rich_menu_alias_id))
        .flatten();
    if let Err(status) = violations.into_result() {
        return Err(failed(status, Step::Validate, "", "nothing to undo"));
    }
    let ((menu, _), image) = (menu.ok_or_else(unrecorded)?, image.ok_or_else(unrecorded)?);
    let line = line_for(services, id).await?;

    line.validate_rich_menu(&menu)
        .await
        .map_err(|err| failed(err.into(), Step::Validate, "", "nothing to undo"))?;
    let rich_menu_id = match line.create_rich_menu(&menu).await {
        Ok(id) => id,
        Err(err) => {
            let rollback = if answer_lost(&err) {
                "LINE's answer was lost, so a menu may have been created: look for it with ListRichMenus"
            } else {
                "nothing to undo"
            };
            return Err(failed(err.into(), Step::Create, "", rollback));
        }
    };

    if let Err(err) = line
        .set_rich_menu_image(&rich_menu_id, image.content_type, image.bytes.clone())
        .await
    {
        let rollback = undo(&line, &rich_menu_id, &Alias::None).await;
        return Err(failed(
            err.into(),
            Step::UploadImage,
            &rich_menu_id,
            &rollback,
        ));
    }

    let alias = match alias {
        None => Alias::None,
        Some(alias) => match set_alias(&line, &alias, &rich_menu_id).await {
            Ok(done) => done,
            Err(status) => {
                let rollback = undo(&line, &rich_menu_id, &Alias::None).await;
                return Err(failed(status, Step::SetAlias, &rich_menu_id, &rollback));
            }
        },
    };

    if make_default && let Err(err) = line.set_default_rich_menu(&rich_menu_id).await {
        let rollback = undo(&line, &rich_menu_id, &alias).await;
        return Err(failed(
            err.into(),
            Step::SetDefault,
            &rich_menu_id,
            &rollback,
        ));
    }

    let (rich_menu_alias_id, previous_alias_rich_menu_id) = match alias {
        Alias::None => (String::new(), String::new()),
        Alias::Created(alias) => (alias, String::new()),
        Alias::Moved { alias, previous } => (alias, previous),
    };
    Ok(pb::PublishRichMenuResponse {
        rich_menu_id,
        is_default: make_default,
        rich_menu_alias_id,
        previous_alias_rich_menu_id,
    })
}

/// Whether LINE may have acted on a request whose answer never came.
fn answer_lost<E>(err: &CallError<E>) -> bool {
    matches!(err, CallError::Line(line::Error::Network(network)) if network.may_have_reached_line())
}

/// Points `alias` at the menu: moved when the channel has it, else created.
async fn set_alias<T: TokenSource<Error = TokenError>>(
    line: &ChannelClient<T>,
    alias: &str,
    rich_menu_id: &str,
) -> Result<Alias, Status> {
    match line.rich_menu_alias(alias).await {
        Ok(existing) => {
            line.update_rich_menu_alias(alias, rich_menu_id).await?;
            Ok(Alias::Moved {
                alias: alias.to_owned(),
                previous: existing.rich_menu_id,
            })
        }
        Err(CallError::Line(line::Error::Api(error))) if error.http_status == 404 => {
            line.create_rich_menu_alias(alias, rich_menu_id).await?;
            Ok(Alias::Created(alias.to_owned()))
        }
        Err(err) => Err(err.into()),
    }
}

/// Undoes the alias, then deletes the menu; says what was undone, or what
/// could not be and why.
async fn undo<T: TokenSource<Error = TokenError>>(
    line: &ChannelClient<T>,
    rich_menu_id: &str,
    alias: &Alias,
) -> String {
    let mut left = Vec::new();
    match alias {
        Alias::None => {}
        Alias::Created(alias) => {
            if let Err(err) = line.delete_rich_menu_alias(alias).await {
                left.push(format!(
                    "the alias {alias} was not deleted ({err}): delete it with DeleteRichMenuAlias"
                ));
            }
        }
        Alias::Moved { alias, previous } => {
            if let Err(err) = line.update_rich_menu_alias(alias, previous).await {
                left.push(format!(
                    "the alias {alias} still points at the new menu, not back at {previous} ({err}): fix it with UpdateRichMenuAlias"
                ));
            }
        }
    }
    if let Err(err) = line.delete_rich_menu(rich_menu_id).await {
        left.push(format!(
            "the rich menu {rich_menu_id} was not deleted ({err}): delete it with DeleteRichMenu"
        ));
    }
    if left.is_empty() {
        "undone".to_owned()
    } else {
        tracing::warn!(rich_menu = %rich_menu_id, left = %left.join("; "), "a failed PublishRichMenu was not fully undone");
        format!("not undone: {}", left.join("; "))
    }
}

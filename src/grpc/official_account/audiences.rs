//! Audiences for narrowcasts: made from user ids or IFAs (by JSON up to
//! LINE's 10,000 per upload, by LINE's text file beyond), added to, listed
//! a page at a time, read with their upload jobs, deleted. LINE keeps
//! them; an unknown audience id is NOT_FOUND (`status::audience_status`).

use tonic::Status;

use super::{Violations, channel_id, line_for};
use crate::{
    grpc::{send::line_id, status::audience_status},
    line::api::{self, AudienceQuery, MAX_DESCRIPTION_CHARS, MAX_FILE_IDS, MAX_PAGE_SIZE, Upload},
    proto::v1::{self as pb, AudienceStatus},
    services::Services,
};

/// Characters of an upload's job description: LINE states no bound; this
/// keeps a caller's text within reason.
const MAX_UPLOAD_DESCRIPTION_CHARS: usize = 300;
/// The last page a `page_token` may name (LINE pages by number).
const MAX_PAGE: i64 = 1_000_000;

fn audience_name(violations: &mut Violations, field: &str, value: &str, required: bool) {
    let chars = value.chars().count();
    if required && chars == 0 {
        violations.add(field, "is required: the audience's name");
    }
    if chars > MAX_DESCRIPTION_CHARS {
        violations.add(
            field,
            format!(
                "must be at most {MAX_DESCRIPTION_CHARS} characters (LINE's limit); got {chars}"
            ),
        );
    }
}

fn upload_description(violations: &mut Violations, value: &str) -> Option<String> {
    let chars = value.chars().count();
    if chars > MAX_UPLOAD_DESCRIPTION_CHARS {
        violations.add(
            "upload_description",
            format!("must be at most {MAX_UPLOAD_DESCRIPTION_CHARS} characters; got {chars}"),
        );
    }
    (!value.is_empty()).then(|| value.to_owned())
}

/// User ids or IFAs: each a printable id without spaces (one per line in
/// LINE's file upload, so a newline must never get in), at most
/// [`MAX_FILE_IDS`]. Only the first bad ids are named.
fn user_ids(violations: &mut Violations, ids: &[String], at_least_one: bool) {
    if at_least_one && ids.is_empty() {
        violations.add("user_ids", "must list 1 or more user ids or IFAs");
    }
    if ids.len() > MAX_FILE_IDS {
        violations.add(
            "user_ids",
            format!(
                "LINE takes at most {MAX_FILE_IDS} per upload; got {}",
                ids.len()
            ),
        );
        return;
    }
    let before = violations.count();
    for (i, id) in ids.iter().enumerate() {
        violations.check(&format!("user_ids[{i}]"), line_id(id));
        if violations.count() - before >= 10 {
            break;
        }
    }
}

fn audience_group_id(violations: &mut Violations, id: i64) -> i64 {
    if id < 1 {
        violations.add(
            "audience_group_id",
            "must be an audience id (CreateAudience, ListAudiences)",
        );
    }
    id
}

fn status(line: Option<&str>) -> AudienceStatus {
    match line.unwrap_or_default() {
        "IN_PROGRESS" => AudienceStatus::InProgress,
        "READY" => AudienceStatus::Ready,
        "FAILED" => AudienceStatus::Failed,
        "EXPIRED" => AudienceStatus::Expired,
        "INACTIVE" => AudienceStatus::Inactive,
        "ACTIVATING" => AudienceStatus::Activating,
        _ => AudienceStatus::Unspecified,
    }
}

fn line_status(status: AudienceStatus) -> Option<&'static str> {
    match status {
        AudienceStatus::Unspecified => None,
        AudienceStatus::InProgress => Some("IN_PROGRESS"),
        AudienceStatus::Ready => Some("READY"),
        AudienceStatus::Failed => Some("FAILED"),
        AudienceStatus::Expired => Some("EXPIRED"),
        AudienceStatus::Inactive => Some("INACTIVE"),
        AudienceStatus::Activating => Some("ACTIVATING"),
    }
}

fn seconds(secs: i64) -> Option<prost_types::Timestamp> {
    (secs > 0).then_some(prost_types::Timestamp {
        seconds: secs,
        nanos: 0,
    })
}

fn audience_to_proto(audience: api::Audience, created: bool) -> pb::Audience {
    let api::Audience {
        audience_group_id,
        r#type,
        description,
        status: line,
        failed_type,
        audience_count,
        created: create_time,
        expire_timestamp,
        is_ifa_audience,
        permission,
        create_route,
        request_id,
        click_url,
    } = audience;
    pb::Audience {
        audience_group_id,
        r#type,
        description,
        // A creation's answer has no status: LINE is adding the users.
        status: match (line.as_deref(), created) {
            (None, true) => AudienceStatus::InProgress,
            (line, _) => status(line),
        } as i32,
        failed_type: failed_type.unwrap_or_default(),
        audience_count,
        create_time: seconds(create_time),
        expire_time: expire_timestamp.and_then(seconds),
        ifa_audience: is_ifa_audience,
        permission,
        create_route,
        request_id: request_id.unwrap_or_default(),
        click_url: click_url.unwrap_or_default(),
    }
}

fn job_to_proto(job: api::AudienceJob) -> pb::AudienceJob {
    let api::AudienceJob {
        audience_group_job_id,
        description,
        r#type,
        job_status,
        failed_type,
        audience_count,
        created,
    } = job;
    pb::AudienceJob {
        audience_group_job_id,
        description,
        r#type,
        job_status,
        failed_type: failed_type.unwrap_or_default(),
        audience_count,
        create_time: seconds(created),
    }
}

pub async fn create_audience(
    services: &Services,
    request: pb::CreateAudienceRequest,
) -> Result<pb::CreateAudienceResponse, Status> {
    let pb::CreateAudienceRequest {
        channel_id: id,
        description,
        user_ids: ids,
        ifa_audience,
        upload_description: job,
    } = request;
    let mut violations = Violations::new();
    let id = channel_id(&mut violations, &id);
    audience_name(&mut violations, "description", &description, true);
    user_ids(&mut violations, &ids, false);
    let job = upload_description(&mut violations, &job);
    violations.into_result()?;
    let upload = Upload {
        ids: &ids,
        upload_description: job.as_deref(),
    };
    let created = line_for(services, id)
        .await?
        .create_audience(&description, ifa_audience, upload)
        .await?;
    Ok(pb::CreateAudienceResponse {
        audience: Some(audience_to_proto(created, true)),
    })
}

pub async fn add_to_audience(
    services: &Services,
    request: pb::AddToAudienceRequest,
) -> Result<pb::AddToAudienceResponse, Status> {
    let pb::AddToAudienceRequest {
        channel_id: id,
        audience_group_id: audience,
        user_ids: ids,
        upload_description: job,
    } = request;
    let mut violations = Violations::new();
    let id = channel_id(&mut violations, &id);
    let audience = audience_group_id(&mut violations, audience);
    user_ids(&mut violations, &ids, true);
    let job = upload_description(&mut violations, &job);
    violations.into_result()?;
    let upload = Upload {
        ids: &ids,
        upload_description: job.as_deref(),
    };
    line_for(services, id)
        .await?
        .add_to_audience(audience, upload)
        .await
        .map_err(audience_status)?;
    Ok(pb::AddToAudienceResponse {})
}

pub async fn list_audiences(
    services: &Services,
    request: pb::ListAudiencesRequest,
) -> Result<pb::ListAudiencesResponse, Status> {
    let pb::ListAudiencesRequest {
        channel_id: id,
        page_size: size,
        page_token: token,
        description,
        status: wanted,
    } = request;
    let mut violations = Violations::new();
    let id = channel_id(&mut violations, &id);
    if !(0..=MAX_PAGE_SIZE).contains(&i64::from(size)) {
        violations.add(
            "page_size",
            format!("must be 0-{MAX_PAGE_SIZE}; got {size}"),
        );
    }
    // LINE pages by number: the token is the next page's.
    let page = if token.is_empty() {
        1
    } else {
        match token.parse::<i64>() {
            Ok(page) if (2..=MAX_PAGE).contains(&page) => page,
            _ => {
                violations.add(
                    "page_token",
                    "must be a next_page_token returned by the previous page",
                );
                1
            }
        }
    };
    audience_name(&mut violations, "description", &description, false);
    let wanted = match AudienceStatus::try_from(wanted) {
        Ok(wanted) => line_status(wanted),
        Err(_) => {
            violations.add("status", format!("{wanted} is not an AudienceStatus value"));
            None
        }
    };
    violations.into_result()?;
    let query = AudienceQuery {
        page,
        size: (size > 0).then_some(i64::from(size)),
        description: (!description.is_empty()).then_some(description.as_str()),
        status: wanted,
    };
    let found = line_for(services, id).await?.audiences(query).await?;
    Ok(pb::ListAudiencesResponse {
        audiences: found
            .audience_groups
            .into_iter()
            .map(|a| audience_to_proto(a, false))
            .collect(),
        next_page_token: if found.has_next_page {
            (page + 1).to_string()
        } else {
            String::new()
        },
        total_count: found.total_count,
        read_write_total_count: found.read_write_audience_group_total_count,
    })
}

pub async fn get_audience(
    services: &Services,
    request: pb::GetAudienceRequest,
) -> Result<pb::GetAudienceResponse, Status> {
    let pb::GetAudienceRequest {
        channel_id: id,
        audience_group_id: audience,
    } = request;
    let mut violations = Violations::new();
    let id = channel_id(&mut violations, &id);
    let audience = audience_group_id(&mut violations, audience);
    violations.into_result()?;
    let data = line_for(services, id)
        .await?
        .audience(audience)
        .await
        .map_err(audience_status)?;
    Ok(pb::GetAudienceResponse {
        audience: Some(audience_to_proto(data.audience_group, false)),
        jobs: data.jobs.into_iter().map(job_to_proto).collect(),
    })
}

pub async fn delete_audience(
    services: &Services,
    request: pb::DeleteAudienceRequest,
) -> Result<pb::DeleteAudienceResponse, Status> {
    let pb::DeleteAudienceRequest {
        channel_id: id,
        audience_group_id: audience,
    } = request;
    let mut violations = Violations::new();
    let id = channel_id(&mut violations, &id);
    let audience = audience_group_id(&mut violations, audience);
    violations.into_result()?;
    line_for(services, id)
        .await?
        .delete_audience(audience)
        .await
        .map_err(audience_status)?;
    Ok(pb::DeleteAudienceResponse {})
}

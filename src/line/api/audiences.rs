//! Audiences (LINE's "manage audience" API, `manage-audience.yml`): user
//! ids or IFAs uploaded as JSON (up to [`MAX_JSON_IDS`]) or as LINE's text
//! file (up to [`MAX_FILE_IDS`], on the data host), listed, read and
//! deleted. Uploads are sent once: a repeat after a lost answer would make
//! a second audience (LINE's create has no retry key).

use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ChannelClient, Result, TokenSource, parse, segment, with_query};
use crate::line::client::{Body, Request};

const AUDIENCE_GROUP: &str = "/v2/bot/audienceGroup";

/// Ids per JSON upload (`CreateAudienceGroupRequest.audiences`, maxItems).
pub const MAX_JSON_IDS: usize = 10_000;
/// Ids per file upload (`createAudienceForUploadingUserIds`: "Max number:
/// 1,500,000").
pub const MAX_FILE_IDS: usize = 1_500_000;
/// Audiences per page of `getAudienceGroups` (`size`, maximum 40).
pub const MAX_PAGE_SIZE: i64 = 40;
/// An audience's name (`description`, maxLength 120).
pub const MAX_DESCRIPTION_CHARS: usize = 120;

/// LINE `AudienceGroup` (and `CreateAudienceGroupResponse`, a subset).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Audience {
    pub audience_group_id: i64,
    #[serde(default)]
    pub r#type: String,
    #[serde(default)]
    pub description: String,
    /// Absent in a creation's answer: LINE is adding the users then.
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub failed_type: Option<String>,
    #[serde(default)]
    pub audience_count: i64,
    /// Unix seconds.
    #[serde(default)]
    pub created: i64,
    /// Unix seconds, for audiences that expire.
    #[serde(default)]
    pub expire_timestamp: Option<i64>,
    #[serde(default)]
    pub is_ifa_audience: bool,
    #[serde(default)]
    pub permission: String,
    #[serde(default)]
    pub create_route: String,
    #[serde(default)]
    pub request_id: Option<String>,
    #[serde(default)]
    pub click_url: Option<String>,
}

/// LINE `AudienceGroupJob`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AudienceJob {
    #[serde(default)]
    pub audience_group_job_id: i64,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub r#type: String,
    #[serde(default)]
    pub job_status: String,
    #[serde(default)]
    pub failed_type: Option<String>,
    #[serde(default)]
    pub audience_count: i64,
    /// Unix seconds.
    #[serde(default)]
    pub created: i64,
}

/// LINE `GetAudienceDataResponse`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AudienceData {
    pub audience_group: Audience,
    #[serde(default)]
    pub jobs: Vec<AudienceJob>,
}

/// LINE `GetAudienceGroupsResponse`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AudiencePage {
    #[serde(default)]
    pub audience_groups: Vec<Audience>,
    #[serde(default)]
    pub has_next_page: bool,
    #[serde(default)]
    pub total_count: i64,
    #[serde(default)]
    pub read_write_audience_group_total_count: i64,
}

/// What `getAudienceGroups` is asked for.
#[derive(Debug, Clone, Default)]
pub struct AudienceQuery<'a> {
    /// From 1.
    pub page: i64,
    /// 1-[`MAX_PAGE_SIZE`]; `None` for LINE's default (20).
    pub size: Option<i64>,
    pub description: Option<&'a str>,
    /// LINE's `AudienceGroupStatus`, e.g. `READY`.
    pub status: Option<&'a str>,
}

/// The users of an upload, with the name of its job.
#[derive(Debug, Clone, Copy)]
pub struct Upload<'a> {
    pub ids: &'a [String],
    pub upload_description: Option<&'a str>,
}

/// A `multipart/form-data` body of text fields and one text file of ids,
/// one per line, as LINE's `byFile` uploads take it. The boundary is
/// random and checked against the content, so no field can end a part.
fn multipart(fields: &[(&str, String)], ids: &[String]) -> Body {
    let mut file = String::with_capacity(ids.iter().map(|id| id.len() + 1).sum());
    for id in ids {
        file.push_str(id);
        file.push('\n');
    }
    let boundary = loop {
        let candidate = format!("line-adapter-{}", uuid::Uuid::new_v4().simple());
        if !file.contains(&candidate) && fields.iter().all(|(_, v)| !v.contains(&candidate)) {
            break candidate;
        }
    };
    let mut body = String::with_capacity(file.len() + 512);
    for (name, value) in fields {
        body.push_str(&format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
        ));
    }
    body.push_str(&format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"audience.txt\"\r\nContent-Type: text/plain\r\n\r\n{file}\r\n--{boundary}--\r\n"
    ));
    Body::Bytes {
        content_type: format!("multipart/form-data; boundary={boundary}"),
        bytes: Bytes::from(body),
    }
}

fn audiences(ids: &[String]) -> Value {
    Value::Array(ids.iter().map(|id| json!({ "id": id })).collect())
}

impl<T: TokenSource> ChannelClient<T> {
    /// `POST /v2/bot/audienceGroup/upload` (JSON, up to [`MAX_JSON_IDS`])
    /// or `.../upload/byFile` on the data host (more): the new audience.
    pub async fn create_audience(
        &self,
        description: &str,
        ifa: bool,
        upload: Upload<'_>,
    ) -> Result<Audience, T::Error> {
        let request = if upload.ids.len() <= MAX_JSON_IDS {
            let mut body = json!({
                "description": description,
                "isIfaAudience": ifa,
                "audiences": audiences(upload.ids),
            });
            if let Some(job) = upload.upload_description {
                body["uploadDescription"] = json!(job);
            }
            Request::post(format!("{AUDIENCE_GROUP}/upload"), body)
        } else {
            let mut fields = vec![
                ("description", description.to_owned()),
                ("isIfaAudience", ifa.to_string()),
            ];
            if let Some(job) = upload.upload_description {
                fields.push(("uploadDescription", job.to_owned()));
            }
            Request::new(
                http::Method::POST,
                format!("{AUDIENCE_GROUP}/upload/byFile"),
                multipart(&fields, upload.ids),
            )
            .on_data_host()
        };
        let response = self.once(request).await?;
        parse(&response)
    }

    /// `PUT /v2/bot/audienceGroup/upload` (JSON) or `.../upload/byFile`
    /// on the data host, as [`Self::create_audience`] chooses.
    pub async fn add_to_audience(
        &self,
        audience_group_id: i64,
        upload: Upload<'_>,
    ) -> Result<(), T::Error> {
        let request = if upload.ids.len() <= MAX_JSON_IDS {
            let mut body = json!({
                "audienceGroupId": audience_group_id,
                "audiences": audiences(upload.ids),
            });
            if let Some(job) = upload.upload_description {
                body["uploadDescription"] = json!(job);
            }
            Request::put(format!("{AUDIENCE_GROUP}/upload"), body)
        } else {
            let mut fields = vec![("audienceGroupId", audience_group_id.to_string())];
            if let Some(job) = upload.upload_description {
                fields.push(("uploadDescription", job.to_owned()));
            }
            Request::new(
                http::Method::PUT,
                format!("{AUDIENCE_GROUP}/upload/byFile"),
                multipart(&fields, upload.ids),
            )
            .on_data_host()
        };
        self.once(request).await.map(drop)
    }

    /// `GET /v2/bot/audienceGroup/list?page=[&size=&description=&status=]`.
    pub async fn audiences(&self, query: AudienceQuery<'_>) -> Result<AudiencePage, T::Error> {
        let page = query.page.to_string();
        let size = query.size.map(|size| size.to_string());
        self.get_json(with_query(
            format!("{AUDIENCE_GROUP}/list"),
            &[
                ("page", Some(&page)),
                ("size", size.as_deref()),
                ("description", query.description),
                ("status", query.status),
            ],
        ))
        .await
    }

    /// `GET /v2/bot/audienceGroup/{audienceGroupId}`.
    pub async fn audience(&self, audience_group_id: i64) -> Result<AudienceData, T::Error> {
        self.get_json(format!(
            "{AUDIENCE_GROUP}/{}",
            segment(&audience_group_id.to_string())
        ))
        .await
    }

    /// `DELETE /v2/bot/audienceGroup/{audienceGroupId}`.
    pub async fn delete_audience(&self, audience_group_id: i64) -> Result<(), T::Error> {
        self.idempotent(Request::delete(format!(
            "{AUDIENCE_GROUP}/{}",
            segment(&audience_group_id.to_string())
        )))
        .await
        .map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_upload_is_one_id_per_line_under_a_fresh_boundary() {
        let ids = vec!["U1".to_owned(), "U2".to_owned()];
        let Body::Bytes {
            content_type,
            bytes,
        } = multipart(&[("description", "spring".into())], &ids)
        else {
            panic!("a multipart body");
        };
        let boundary = content_type
            .strip_prefix("multipart/form-data; boundary=")
            .expect("the boundary in the content type");
        let text = String::from_utf8(bytes.to_vec()).unwrap();
        assert!(text.starts_with(&format!("--{boundary}\r\n")));
        assert!(text.contains("name=\"description\"\r\n\r\nspring\r\n"));
        assert!(text.contains("Content-Type: text/plain\r\n\r\nU1\nU2\n\r\n"));
        assert!(text.ends_with(&format!("--{boundary}--\r\n")));
    }
}

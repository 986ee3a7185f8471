//! Account linking: a link token LINE issues for one user, which the
//! Weiyu customer's site hands back to LINE once the user logged in there
//! (LINE then sends the `accountLink` event). The token is a credential
//! for ten minutes: it leaves only in the answer, never in a log.

use tonic::Status;

use super::{Violations, channel_id, line_for};
use crate::{grpc::lookup::path_id, proto::v1 as pb, services::Services};

pub async fn issue_link_token(
    services: &Services,
    request: pb::IssueLinkTokenRequest,
) -> Result<pb::IssueLinkTokenResponse, Status> {
    let pb::IssueLinkTokenRequest {
        channel_id: id,
        user_id,
    } = request;
    let mut violations = Violations::new();
    let id = channel_id(&mut violations, &id);
    let user = path_id(&mut violations, "user_id", &user_id);
    violations.into_result()?;
    let user = user.unwrap_or_default();
    let token = line_for(services, id)
        .await?
        .issue_link_token(&user)
        .await?;
    Ok(pb::IssueLinkTokenResponse {
        link_token: token.expose().to_owned(),
    })
}

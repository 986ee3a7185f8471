//! API keys and what they allow. A key may carry scopes, so that the agent
//! desk cannot rotate tokens and a read-only consumer cannot send:
//! `admin` (ChannelAdmin, OfficialAccount), `send` (sending and lookup RPCs
//! of Messaging), `subscribe` (Subscribe and Ack), `insight` (the read-only
//! statistics of OfficialAccount, which `admin` allows too, so an analytics
//! service can read them without managing anything). A key without scopes
//! allows everything.
//!
//! Written as `key` or `key:scope+scope` in `api_keys` (so keys must not
//! contain `:`, `,` or whitespace).

use std::fmt;

use crate::secret::Secret;

/// One configured API key and its scopes.
#[derive(Debug, Clone)]
pub struct ApiKey {
    pub key: Secret,
    pub scopes: Scopes,
}

/// What a key may call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scopes {
    pub admin: bool,
    pub send: bool,
    pub subscribe: bool,
    pub insight: bool,
}

impl Scopes {
    pub const ALL: Scopes = Scopes {
        admin: true,
        send: true,
        subscribe: true,
        insight: true,
    };
    const NONE: Scopes = Scopes {
        admin: false,
        send: false,
        subscribe: false,
        insight: false,
    };

    pub fn allows(self, scope: Scope) -> bool {
        match scope {
            Scope::Admin => self.admin,
            Scope::Send => self.send,
            Scope::Subscribe => self.subscribe,
            // Whoever may manage the account may read its statistics.
            Scope::Insight => self.insight || self.admin,
        }
    }
}

/// The scope an RPC needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Admin,
    Send,
    Subscribe,
    Insight,
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Scope::Admin => "admin",
            Scope::Send => "send",
            Scope::Subscribe => "subscribe",
            Scope::Insight => "insight",
        })
    }
}

impl Scope {
    /// The scope a gRPC method (`/package.Service/Method`) needs; `None` for
    /// what stays open (health, reflection).
    pub fn for_path(path: &str) -> Option<Scope> {
        let rest = path.strip_prefix("/weiyu.line.v1.")?;
        let (service, method) = rest.split_once('/')?;
        match (service, method) {
            ("ChannelAdmin", _) => Some(Scope::Admin),
            ("Messaging", "Subscribe" | "Ack") => Some(Scope::Subscribe),
            ("Messaging", _) => Some(Scope::Send),
            ("OfficialAccount", method) if INSIGHT_RPCS.contains(&method) => Some(Scope::Insight),
            ("OfficialAccount", _) => Some(Scope::Admin),
            // Any other service of our package: the strictest scope.
            _ => Some(Scope::Admin),
        }
    }
}

/// The read-only statistics of OfficialAccount: scope `insight` (or
/// `admin`).
const INSIGHT_RPCS: &[&str] = &[
    "GetFollowerStats",
    "GetFriendsDemographics",
    "GetMessageDeliveryStats",
    "GetMessageEventStats",
    "GetUnitStats",
    "GetRichMenuStats",
    "ListAggregationUnits",
];

/// Parses one `key[:scope+scope]` entry. The error never quotes the key.
pub fn parse_entry(entry: &str) -> Result<ApiKey, String> {
    let entry = entry.trim();
    let (key, scopes) = match entry.split_once(':') {
        Some((key, scopes)) => (key, Some(scopes)),
        None => (entry, None),
    };
    if key.is_empty() {
        return Err("an API key must not be empty".into());
    }
    if key.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("an API key must not contain whitespace".into());
    }
    let scopes = match scopes {
        None => Scopes::ALL,
        Some(list) => {
            let mut scopes = Scopes::NONE;
            for name in list.split('+') {
                match name.trim() {
                    "admin" => scopes.admin = true,
                    "send" => scopes.send = true,
                    "subscribe" => scopes.subscribe = true,
                    "insight" => scopes.insight = true,
                    "" => return Err("an empty scope after `:` (write `key:admin+send`)".into()),
                    other => {
                        return Err(format!(
                            "unknown scope `{other}` (scopes are admin, send, subscribe, insight)"
                        ));
                    }
                }
            }
            scopes
        }
    };
    Ok(ApiKey {
        key: Secret::new(key),
        scopes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_and_paths() {
        let all = parse_entry("k1").unwrap();
        assert_eq!(all.scopes, Scopes::ALL);
        assert_eq!(all.key.expose(), "k1");
        let some = parse_entry(" k2:send+subscribe ").unwrap();
        assert_eq!(some.key.expose(), "k2");
        assert!(!some.scopes.admin && some.scopes.send && some.scopes.subscribe);
        let err = parse_entry("secret-key:root").unwrap_err();
        assert!(err.contains("root") && !err.contains("secret-key"));
        assert!(parse_entry("k:").is_err());
        assert!(parse_entry(":admin").is_err());

        assert_eq!(
            Scope::for_path("/weiyu.line.v1.ChannelAdmin/RotateAccessToken"),
            Some(Scope::Admin)
        );
        assert_eq!(
            Scope::for_path("/weiyu.line.v1.Messaging/Ack"),
            Some(Scope::Subscribe)
        );
        assert_eq!(
            Scope::for_path("/weiyu.line.v1.Messaging/Send"),
            Some(Scope::Send)
        );
        assert_eq!(Scope::for_path("/grpc.health.v1.Health/Check"), None);
        assert_eq!(
            Scope::for_path("/weiyu.line.v1.OfficialAccount/GetFollowerStats"),
            Some(Scope::Insight)
        );
        assert_eq!(
            Scope::for_path("/weiyu.line.v1.OfficialAccount/PublishRichMenu"),
            Some(Scope::Admin)
        );
        // Follower ids are users, not statistics.
        assert_eq!(
            Scope::for_path("/weiyu.line.v1.OfficialAccount/GetFollowerIds"),
            Some(Scope::Admin)
        );
    }

    #[test]
    fn insight_is_read_by_insight_and_admin_keys_only() {
        let insight = parse_entry("k:insight").unwrap().scopes;
        assert!(insight.allows(Scope::Insight));
        assert!(!insight.allows(Scope::Admin) && !insight.allows(Scope::Send));
        let admin = parse_entry("k:admin").unwrap().scopes;
        assert!(admin.allows(Scope::Insight));
        let desk = parse_entry("k:send+subscribe").unwrap().scopes;
        assert!(!desk.allows(Scope::Insight));
        assert!(Scopes::ALL.allows(Scope::Insight));
    }
}

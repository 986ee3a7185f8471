//! Page tokens of the List RPCs: opaque to callers (base64 of a prefix and
//! the page's last id), and refused unless they decode to an id the RPC
//! itself would accept, so a token never reaches the store unchecked.

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};

/// One RPC's tokens.
pub(super) struct PageTokens {
    /// Says where the next page starts, e.g. `after:`.
    pub prefix: &'static str,
    /// The RPC, for the refusal's words.
    pub rpc: &'static str,
    /// Whether an id is one of the RPC's.
    pub valid: fn(&str) -> bool,
}

impl PageTokens {
    pub fn encode(&self, last_id: &str) -> String {
        URL_SAFE_NO_PAD.encode(format!("{}{last_id}", self.prefix))
    }

    /// `None` for the first page (an empty token).
    pub fn decode(&self, token: &str) -> Result<Option<String>, String> {
        if token.is_empty() {
            return Ok(None);
        }
        let refused = || format!("is not a page token returned by {}", self.rpc);
        let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| refused())?;
        let text = String::from_utf8(bytes).map_err(|_| refused())?;
        let id = text.strip_prefix(self.prefix).ok_or_else(refused)?;
        if !(self.valid)(id) {
            return Err(refused());
        }
        Ok(Some(id.to_owned()))
    }
}

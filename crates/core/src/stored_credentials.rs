//! Credentials IAM and STS issued, as the store keeps them (an IAM user's access key, an STS
//! session), found by access key id. Shared by both front ends that verify signatures: the AWS
//! endpoint (requests under `--auth strict`) and each cluster's Kubernetes API (`aws eks
//! get-token` tokens). Pure: the caller reads the records.

use serde_json::Value;

use crate::sigv4::Credentials;

/// STS sessions, keyed by their access key id (`ASIA…`).
pub const SESSION_KIND: &str = "sts.amazonaws.com/Session";
/// IAM users, keyed by their lower-cased name.
pub const USER_KIND: &str = "iam.amazonaws.com/User";
/// IAM users' access keys, keyed by their id (`AKIA…`).
pub const ACCESS_KEY_KIND: &str = "iam.amazonaws.com/AccessKey";

/// Credentials kept in the store, found by access key id: an IAM user's active access key, or an
/// STS session (with its token and expiry, in seconds since the epoch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredKey {
    pub credentials: Credentials,
    pub session_token: Option<String>,
    pub expiration: Option<i64>,
}

impl StoredKey {
    /// Why a request signed with this key is refused, given the session token it carried and
    /// the time (None: it may be used).
    pub fn refusal(&self, given_token: Option<&str>, now: i64) -> Option<StoredKeyRefusal> {
        match (&self.session_token, given_token) {
            (Some(token), given)
                if !crate::sigv4::constant_time_eq(
                    given.unwrap_or_default().as_bytes(),
                    token.as_bytes(),
                ) =>
            {
                return Some(StoredKeyRefusal::WrongToken);
            }
            // A long-term key with a session token: AWS refuses it too.
            (None, Some(_)) => return Some(StoredKeyRefusal::WrongToken),
            _ => {}
        }
        self.expiration
            .is_some_and(|e| e < now)
            .then_some(StoredKeyRefusal::Expired)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoredKeyRefusal {
    /// A session's key without its token (or with another).
    WrongToken,
    Expired,
}

/// The stored credentials of `access_key_id`; `get(kind, key)` reads one record.
pub fn lookup(get: &dyn Fn(&str, &str) -> Option<Value>, access_key_id: &str) -> Option<StoredKey> {
    if let Some(session) = get(SESSION_KIND, access_key_id) {
        let text = |k: &str| session[k].as_str().map(str::to_string);
        return Some(StoredKey {
            credentials: Credentials {
                access_key_id: text("accessKeyId")?,
                secret_access_key: text("secretAccessKey")?,
                principal_arn: Some(text("principalArn")?),
            },
            session_token: Some(text("sessionToken")?),
            expiration: Some(session["expiration"].as_i64()?),
        });
    }
    let key = get(ACCESS_KEY_KIND, access_key_id)?;
    if key["status"] != "Active" {
        return None;
    }
    let user = get(USER_KIND, &key["user"].as_str()?.to_ascii_lowercase())?;
    Some(StoredKey {
        credentials: Credentials {
            access_key_id: access_key_id.to_string(),
            secret_access_key: key["secret"].as_str()?.to_string(),
            principal_arn: Some(user["arn"].as_str()?.to_string()),
        },
        session_token: None,
        expiration: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn records(kind: &str, key: &str) -> Option<Value> {
        match (kind, key) {
            (SESSION_KIND, "ASIA1") => Some(json!({"accessKeyId": "ASIA1", "secretAccessKey": "s",
                "sessionToken": "tok", "principalArn": "arn:aws:sts::1:assumed-role/r/x", "expiration": 100})),
            (ACCESS_KEY_KIND, "AKIA1") => {
                Some(json!({"user": "Alice", "id": "AKIA1", "secret": "k",
                "status": "Active", "createDate": "2026-01-01T00:00:00Z"}))
            }
            (ACCESS_KEY_KIND, "AKIA2") => {
                Some(json!({"user": "Alice", "id": "AKIA2", "secret": "k",
                "status": "Inactive", "createDate": "2026-01-01T00:00:00Z"}))
            }
            (USER_KIND, "alice") => Some(json!({"arn": "arn:aws:iam::1:user/Alice"})),
            _ => None,
        }
    }

    #[test]
    fn sessions_and_active_user_keys_are_found() {
        let s = lookup(&records, "ASIA1").unwrap();
        assert_eq!(
            s.credentials.principal_arn.as_deref(),
            Some("arn:aws:sts::1:assumed-role/r/x")
        );
        assert_eq!(s.refusal(Some("tok"), 50), None);
        assert_eq!(s.refusal(None, 50), Some(StoredKeyRefusal::WrongToken));
        assert_eq!(s.refusal(Some("tok"), 101), Some(StoredKeyRefusal::Expired));
        let k = lookup(&records, "AKIA1").unwrap();
        assert_eq!(
            k.credentials.principal_arn.as_deref(),
            Some("arn:aws:iam::1:user/Alice")
        );
        assert_eq!(k.refusal(None, 1_000_000), None);
        assert_eq!(
            k.refusal(Some("tok"), 0),
            Some(StoredKeyRefusal::WrongToken)
        );
        assert!(
            lookup(&records, "AKIA2").is_none(),
            "inactive keys sign nothing"
        );
        assert!(lookup(&records, "AKIA9").is_none());
    }
}

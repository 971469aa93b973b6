//! The HTTP client behind the operator CLI (`canaryd status`, `start`, `pause`, …): calls the
//! admin API, reads its answers as the controller's typed documents ([`Status`]) and turns its
//! `{"error","hint"}` answers ([`ApiError`]) into [`ClientError`]s.

use std::time::Duration;

use canaryd_controller::{ActionRequest, ApiError, Status};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach the admin API at {url}: {reason}\nhint: is canaryd running? pass --admin URL (or CANARYD_ADMIN) if it listens elsewhere")]
    Unreachable { url: String, reason: String },
    #[error("{error}\nhint: {hint}")]
    Api {
        status: u16,
        error: String,
        hint: String,
        /// 421 from a fleet's follower: the leader's admin address.
        leader_admin: Option<String>,
    },
    #[error("unexpected answer from {url}: {reason}")]
    Invalid { url: String, reason: String },
}

/// A client of one daemon's admin API.
#[derive(Debug, Clone)]
pub struct AdminClient {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
}

impl AdminClient {
    pub fn new(base: &str, token: Option<String>) -> Result<Self, ClientError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| ClientError::Invalid {
                url: base.to_string(),
                reason: e.to_string(),
            })?;
        Ok(Self {
            base: base.trim_end_matches('/').to_string(),
            token,
            http,
        })
    }

    pub async fn status(&self) -> Result<Status, ClientError> {
        let body = self
            .send(self.http.get(format!("{}/api/v1/status", self.base)))
            .await?;
        self.read(&body)
    }

    /// `POST /api/v1/<action>` with `body`; answers the new status. A fleet's follower answers
    /// 421 naming the leader's admin address: the action is sent there, once.
    pub async fn action(&self, action: &str, body: &ActionRequest) -> Result<Status, ClientError> {
        match self.action_here(action, body).await {
            Err(ClientError::Api {
                status: 421,
                leader_admin: Some(leader),
                ..
            }) => {
                eprintln!("this member is a follower: sending {action} to the leader at {leader}");
                let leader = AdminClient {
                    base: format!("http://{leader}"),
                    ..self.clone()
                };
                leader.action_here(action, body).await
            }
            other => other,
        }
    }

    async fn action_here(&self, action: &str, body: &ActionRequest) -> Result<Status, ClientError> {
        let body = serde_json::to_string(body).map_err(|e| ClientError::Invalid {
            url: self.base.clone(),
            reason: format!("cannot encode the request: {e}"),
        })?;
        let mut req = self
            .http
            .post(format!("{}/api/v1/{action}", self.base))
            .header("content-type", "application/json")
            .body(body);
        if let Some(t) = &self.token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let body = self.send(req).await?;
        self.read(&body)
    }

    /// A status document from a 2xx answer's body.
    fn read(&self, body: &[u8]) -> Result<Status, ClientError> {
        serde_json::from_slice(body).map_err(|e| ClientError::Invalid {
            url: self.base.clone(),
            reason: e.to_string(),
        })
    }

    /// Sends `req`: the body of a 2xx answer, or the [`ApiError`] of any other.
    async fn send(&self, req: reqwest::RequestBuilder) -> Result<Vec<u8>, ClientError> {
        let invalid = |reason: String| ClientError::Invalid {
            url: self.base.clone(),
            reason,
        };
        let resp = req.send().await.map_err(|e| ClientError::Unreachable {
            url: self.base.clone(),
            reason: e.to_string(),
        })?;
        let status = resp.status().as_u16();
        let body = resp.bytes().await.map_err(|e| invalid(e.to_string()))?;
        if (200..300).contains(&status) {
            return Ok(body.to_vec());
        }
        let refusal: ApiError =
            serde_json::from_slice(&body).map_err(|e| invalid(e.to_string()))?;
        Err(ClientError::Api {
            status,
            error: if refusal.error.is_empty() {
                "request failed".to_string()
            } else {
                refusal.error
            },
            hint: refusal.hint,
            leader_admin: refusal.leader_admin,
        })
    }
}

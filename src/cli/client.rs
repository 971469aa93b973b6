//! The HTTP client behind the operator CLI (`canaryd status`, `start`, `pause`, …): calls the
//! admin API and turns its `{"error","hint"}` answers into [`ClientError`]s.

use std::time::Duration;

use prometheus_http_query::reqwest;
use serde_json::Value;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach the admin API at {url}: {reason}\nhint: is canaryd running? pass --admin URL (or CANARYD_ADMIN) if it listens elsewhere")]
    Unreachable { url: String, reason: String },
    #[error("{error}\nhint: {hint}")]
    Api {
        status: u16,
        error: String,
        hint: String,
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

    pub async fn status(&self) -> Result<Value, ClientError> {
        self.send(self.http.get(format!("{}/api/v1/status", self.base)))
            .await
    }

    pub async fn decisions(&self, limit: usize) -> Result<Value, ClientError> {
        self.send(
            self.http
                .get(format!("{}/api/v1/decisions?limit={limit}", self.base)),
        )
        .await
    }

    /// `POST /api/v1/<action>` with `body`; answers the new status.
    pub async fn action(&self, action: &str, body: Value) -> Result<Value, ClientError> {
        let mut req = self
            .http
            .post(format!("{}/api/v1/{action}", self.base))
            .header("content-type", "application/json")
            .body(body.to_string());
        if let Some(t) = &self.token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        self.send(req).await
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Result<Value, ClientError> {
        let resp = req.send().await.map_err(|e| ClientError::Unreachable {
            url: self.base.clone(),
            reason: e.to_string(),
        })?;
        let status = resp.status().as_u16();
        let body: Value = resp.json().await.map_err(|e| ClientError::Invalid {
            url: self.base.clone(),
            reason: e.to_string(),
        })?;
        if (200..300).contains(&status) {
            Ok(body)
        } else {
            Err(ClientError::Api {
                status,
                error: body["error"]
                    .as_str()
                    .unwrap_or("request failed")
                    .to_string(),
                hint: body["hint"].as_str().unwrap_or("").to_string(),
            })
        }
    }
}

//! A client for a GitHub-compatible REST API: just enough to open a pull request.
//! The token is sent as a sensitive header and redacted from Debug output.

use std::fmt;
use std::time::Duration;

use anyhow::{Context, bail};
use reqwest::header::{ACCEPT, AUTHORIZATION, HeaderValue, USER_AGENT};
use serde::Serialize;
use serde_json::Value;

/// Bytes of an error response body quoted in the error.
const ERROR_BODY_KEEP: usize = 512;

/// A pull request to open.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct PullRequest<'a> {
    /// Title.
    pub title: &'a str,
    /// Branch with the changes.
    pub head: &'a str,
    /// Branch to merge into.
    pub base: &'a str,
    /// Description.
    pub body: &'a str,
}

/// Opens pull requests through `POST {base}/repos/{owner}/{repo}/pulls`.
#[derive(Clone)]
pub(crate) struct ForgeClient {
    base_url: String,
    token: Option<String>,
    // None when the HTTP client could not be built; opening a PR then fails with `init_error`.
    http: Option<reqwest::Client>,
    init_error: Option<String>,
}

impl fmt::Debug for ForgeClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ForgeClient")
            .field("base_url", &self.base_url)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish_non_exhaustive()
    }
}

impl ForgeClient {
    /// A client for the API at `base_url`, authenticating with `token` when given.
    pub fn new(base_url: &str, token: Option<&str>, timeout: Duration) -> Self {
        let built = reqwest::Client::builder().timeout(timeout).build();
        let (http, init_error) = match built {
            Ok(c) => (Some(c), None),
            Err(e) => {
                tracing::error!(error = %e, "building the forge HTTP client failed; pull requests will fail");
                (None, Some(e.to_string()))
            }
        };
        Self {
            base_url: base_url.trim_end_matches('/').to_string(),
            token: token.filter(|t| !t.is_empty()).map(str::to_string),
            http,
            init_error,
        }
    }

    /// Opens `pr` on `owner/repo`; returns the PR's `html_url` (else its API `url`).
    pub async fn open_pull_request(&self, owner: &str, repo: &str, pr: &PullRequest<'_>) -> anyhow::Result<String> {
        let (http, url) = self.pulls(owner, repo)?;
        let request = self.authorized(http.post(&url))?.json(pr);
        let body = Self::send(request, &url, "opening a pull request").await?;
        pr_url(&body).with_context(|| format!("pull request response from {url} has no html_url or url"))
    }

    /// The pull request (open or closed) whose head is `branch` of `owner/repo`, if there
    /// is one: `GET …/pulls?head=owner:branch&state=all`, GitHub's lookup by branch.
    pub async fn find_pull_request(&self, owner: &str, repo: &str, branch: &str) -> anyhow::Result<Option<String>> {
        let (http, url) = self.pulls(owner, repo)?;
        let head = format!("{owner}:{branch}");
        let request = self.authorized(http.get(&url))?.query(&[("head", head.as_str()), ("state", "all")]);
        let body = Self::send(request, &url, "looking up the pull request").await?;
        let Some(list) = body.as_array() else {
            bail!("pull request listing from {url} is not a JSON array");
        };
        // Only a PR whose head really is this branch: a forge that ignored the filter
        // must not make us skip our own.
        let same_head = |pr: &&Value| pr.pointer("/head/ref").and_then(Value::as_str) == Some(branch);
        Ok(list.iter().find(same_head).and_then(pr_url))
    }

    /// The client and the `pulls` URL of `owner/repo`, both checked.
    fn pulls(&self, owner: &str, repo: &str) -> anyhow::Result<(&reqwest::Client, String)> {
        let Some(http) = &self.http else {
            bail!("forge HTTP client unavailable: {}", self.init_error.as_deref().unwrap_or("unknown error"));
        };
        for part in [owner, repo] {
            // Both go into the URL path unescaped, so allow only plain name characters.
            if part.is_empty() || !part.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)) {
                bail!("invalid repository owner or name {part:?}");
            }
        }
        Ok((http, format!("{}/repos/{owner}/{repo}/pulls", self.base_url)))
    }

    /// `request` with the API's headers and the token, if any.
    fn authorized(&self, mut request: reqwest::RequestBuilder) -> anyhow::Result<reqwest::RequestBuilder> {
        request = request
            .header(ACCEPT, "application/vnd.github+json")
            .header("X-GitHub-Api-Version", "2022-11-28")
            .header(USER_AGENT, "alephauto");
        if let Some(token) = &self.token {
            let mut value =
                HeaderValue::from_str(&format!("Bearer {token}")).context("forge token is not a valid header value")?;
            value.set_sensitive(true);
            request = request.header(AUTHORIZATION, value);
        }
        Ok(request)
    }

    /// Sends `request` and parses a successful answer as JSON; `what` names it in errors.
    async fn send(request: reqwest::RequestBuilder, url: &str, what: &str) -> anyhow::Result<Value> {
        let response = request.send().await.with_context(|| format!("{what} at {url}"))?;
        let status = response.status();
        let text = response.text().await.with_context(|| format!("reading the response from {url}"))?;
        if !status.is_success() {
            let mut end = text.len().min(ERROR_BODY_KEEP);
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            bail!("{what} at {url} failed with {status}: {}", &text[..end]);
        }
        serde_json::from_str(&text).with_context(|| format!("pull request response from {url}"))
    }
}

/// A pull request's `html_url`, else its API `url`.
fn pr_url(pr: &Value) -> Option<String> {
    ["html_url", "url"].iter().find_map(|k| pr.get(k).and_then(Value::as_str)).map(str::to_string)
}

/// `(owner, repo)` from a remote URL: the last two path components, without `.git`.
///
/// Handles `https://host/owner/repo(.git)`, `ssh://git@host[:port]/owner/repo`,
/// scp-like `git@host:owner/repo.git`, `file://` URLs and local paths.
pub(crate) fn owner_and_repo(remote_url: &str) -> Option<(String, String)> {
    let url = remote_url.trim();
    let path = if let Some((_, rest)) = url.split_once("://") {
        // Drop the authority (user, host, port); file:///path has an empty one.
        rest.split_once('/').map(|(_, p)| p).unwrap_or("")
    } else {
        match url.split_once(':') {
            // scp-like syntax: a colon before any slash.
            Some((host, p)) if !host.contains('/') => p,
            _ => url,
        }
    };
    let mut parts = path.split(['/', '\\']).filter(|p| !p.is_empty() && *p != ".");
    let repo = parts.next_back()?;
    let owner = parts.next_back()?;
    let repo = repo.strip_suffix(".git").unwrap_or(repo);
    if repo.is_empty() || owner == ".." || repo == ".." {
        return None;
    }
    Some((owner.to_string(), repo.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(url: &str) -> Option<(String, String)> {
        owner_and_repo(url)
    }

    fn some(o: &str, r: &str) -> Option<(String, String)> {
        Some((o.into(), r.into()))
    }

    #[test]
    fn owner_and_repo_come_from_every_remote_form() {
        assert_eq!(pair("https://github.com/acme/widgets.git"), some("acme", "widgets"));
        assert_eq!(pair("https://github.com/acme/widgets"), some("acme", "widgets"));
        assert_eq!(pair("https://user:pw@ghe.example/acme/widgets/"), some("acme", "widgets"));
        assert_eq!(pair("git@github.com:acme/widgets.git"), some("acme", "widgets"));
        assert_eq!(pair("github.com:acme/widgets"), some("acme", "widgets"));
        assert_eq!(pair("ssh://git@host:2222/acme/widgets.git"), some("acme", "widgets"));
        assert_eq!(pair("file:///srv/git/acme/widgets.git"), some("acme", "widgets"));
        assert_eq!(pair("/srv/git/acme/widgets.git"), some("acme", "widgets"));
        assert_eq!(pair("../remotes/acme/widgets.git/"), some("acme", "widgets"));
        assert_eq!(pair("https://github.com/widgets"), None);
        assert_eq!(pair("widgets.git"), None);
        assert_eq!(pair(""), None);
    }

    #[test]
    fn debug_output_redacts_the_token() {
        let client = ForgeClient::new("https://api.example", Some("ghp_supersecret"), Duration::from_secs(5));
        let shown = format!("{client:?}");
        assert!(!shown.contains("ghp_supersecret"), "{shown}");
        assert!(shown.contains("<redacted>"), "{shown}");
    }
}

//! The web console for HQ staff, in Chinese: login and logout, the
//! campaigns with their briefing countdown, and a campaign's progress
//! against the KPIs. Pages are askama templates (`server/templates/`,
//! checked at compile time, HTML escaped), with nothing loaded from outside
//! the binary.
//!
//! Every page needs a signed-in session ([`Viewer`]); without one it sends
//! the browser to the login page. Every form carries a form token that must
//! match: the session's on its pages, and on the login page the one its
//! own cookie holds (CSRF). Session cookies are HttpOnly and
//! SameSite=Strict.

use std::net::{IpAddr, Ipv4Addr};

use askama::Template;
use std::collections::HashMap;

use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Extension, Form, Router};
use serde::Deserialize;

use super::api::{ApiError, ApiState, blocking};
use super::query::read;
use crate::accounts::{AuditEntry, LoginError, Role, Session, same_token};
use crate::read::query::{self, CutOff};
use crate::sync::EditError;
use sync_core::doc::ModelError;
use sync_core::ids::DocId;

/// The session cookie.
const SESSION: &str = "fs_session";
/// The login form's own token, before there is a session.
const LOGIN_FORM: &str = "fs_login";

/// The address a request came from, set per connection.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Peer(pub(crate) IpAddr);

/// The console's pages.
pub(crate) fn router(state: ApiState) -> Router {
    Router::new()
        .route("/", get(campaigns))
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
        .route("/campaigns/{id}", get(campaign))
        .route("/audit", get(audit))
        .route("/hazards", get(hazards))
        .route("/hazards/{id}", get(hazard))
        .route("/photos/{sha}", get(photo))
        .route("/campaigns/{id}/register", get(register))
        .route("/campaigns/{id}/briefing/{file}", get(briefing_file))
        .route("/campaigns/{id}/reviews", get(reviews))
        .route("/campaigns/{id}/conflicts", get(conflicts))
        .route("/campaigns/{id}/conflicts/decide", post(decide))
        .route("/devices", get(devices))
        .route("/devices/revoke", post(revoke))
        .layer(axum::middleware::from_fn(secure_cookies))
        .with_state(state)
}

/// Whoever is signed in, for a page that needs it.
pub(crate) struct Viewer {
    pub(super) session: Session,
    token: String,
}

impl FromRequestParts<ApiState> for Viewer {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, Self::Rejection> {
        let Some(token) = cookie(&parts.headers, SESSION) else { return Err(to_login()) };
        let accounts = state.accounts.clone();
        let asked = token.clone();
        let session = blocking(move || accounts.session(&asked, field_client::now_ms()).map_err(ApiError::Internal))
            .await
            .map_err(|e| page_error(&e))?;
        match session {
            Some(session) => Ok(Viewer { session, token }),
            None => Err(to_login()),
        }
    }
}

/// A form as a page sends it; one that does not read gets a page saying so
/// in Chinese, and changes nothing.
pub(crate) struct PageForm<T>(pub(super) T);

impl<T: serde::de::DeserializeOwned, S: Send + Sync> axum::extract::FromRequest<S> for PageForm<T> {
    type Rejection = Response;

    async fn from_request(request: axum::extract::Request, state: &S) -> Result<Self, Self::Rejection> {
        match Form::<T>::from_request(request, state).await {
            Ok(Form(form)) => Ok(PageForm(form)),
            Err(_) => {
                let message = "表单内容无法识别，未做任何更改。请返回页面刷新后再试。";
                Err(rendered(StatusCode::BAD_REQUEST, &ErrorPage { message }))
            }
        }
    }
}

/// The value of cookie `name`, if the request carries it.
fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.to_owned())
}

/// A cookie for the whole console, or cleared.
fn set_cookie(name: &str, value: Option<&str>) -> HeaderValue {
    let text = match value {
        Some(value) => format!("{name}={value}; Path=/; HttpOnly; SameSite=Strict"),
        None => format!("{name}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
    };
    HeaderValue::from_str(&text).unwrap_or(HeaderValue::from_static(""))
}

/// Served over TLS (by a proxy in front, which says so with
/// `X-Forwarded-Proto: https`): every cookie is also Secure, so a browser
/// never sends it over plain HTTP.
async fn secure_cookies(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let tls = request.headers().get("x-forwarded-proto").is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"));
    let mut response = next.run(request).await;
    if tls {
        let secured: Vec<HeaderValue> = response
            .headers()
            .get_all(header::SET_COOKIE)
            .iter()
            .filter_map(|cookie| HeaderValue::from_str(&format!("{}; Secure", cookie.to_str().ok()?)).ok())
            .collect();
        response.headers_mut().remove(header::SET_COOKIE);
        for cookie in secured {
            response.headers_mut().append(header::SET_COOKIE, cookie);
        }
    }
    response
}

/// To the login page, forgetting a session that ended.
fn to_login() -> Response {
    let mut response = Redirect::to("/login").into_response();
    response.headers_mut().append(header::SET_COOKIE, set_cookie(SESSION, None));
    response
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    csrf: String,
    name: String,
    error: Option<String>,
}

#[derive(Template)]
#[template(path = "error.html")]
pub(super) struct ErrorPage<'a> {
    pub(super) message: &'a str,
}

/// A page that says what went wrong, in a sentence.
pub(super) fn page_error(error: &ApiError) -> Response {
    let status = match error {
        ApiError::BadQuery(_) | ApiError::Refused(_) => StatusCode::BAD_REQUEST,
        ApiError::NotFound(_) => StatusCode::NOT_FOUND,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    let message = match error {
        ApiError::Internal(e) => {
            tracing::error!(error = format!("{e:#}"), "console page failed");
            "服务器内部错误，请稍后再试；若一直如此，请联系管理员查看服务器日志。".to_owned()
        }
        other => other.to_string(),
    };
    rendered(status, &ErrorPage { message: &message })
}

pub(super) fn rendered(status: StatusCode, page: &impl Template) -> Response {
    match page.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(error) => {
            tracing::error!(%error, "template did not render");
            (StatusCode::INTERNAL_SERVER_ERROR, "页面生成失败").into_response()
        }
    }
}

/// The login form, with a fresh form token in its own cookie.
fn login_form(status: StatusCode, name: &str, error: Option<String>) -> Response {
    let csrf = match crate::accounts::random_token() {
        Ok(token) => token,
        Err(e) => return page_error(&ApiError::Internal(e)),
    };
    let mut response = rendered(status, &LoginPage { csrf: csrf.clone(), name: name.to_owned(), error });
    response.headers_mut().append(header::SET_COOKIE, set_cookie(LOGIN_FORM, Some(&csrf)));
    response
}

async fn login_page(State(state): State<ApiState>, headers: HeaderMap) -> Response {
    if let Some(token) = cookie(&headers, SESSION) {
        let accounts = state.accounts.clone();
        let signed_in = blocking(move || accounts.session(&token, field_client::now_ms()).map_err(ApiError::Internal));
        if matches!(signed_in.await, Ok(Some(_))) {
            return Redirect::to("/").into_response();
        }
    }
    login_form(StatusCode::OK, "", None)
}

#[derive(Deserialize)]
struct LoginForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    password: String,
}

async fn login(
    State(state): State<ApiState>,
    peer: Option<Extension<Peer>>,
    headers: HeaderMap,
    PageForm(form): PageForm<LoginForm>,
) -> Response {
    let expected = cookie(&headers, LOGIN_FORM).unwrap_or_default();
    if expected.is_empty() || !same_token(&form.csrf, &expected) {
        let message = "登录表单已过期或不是从本页提交的，请重新输入用户名和密码。".to_owned();
        return login_form(StatusCode::FORBIDDEN, &form.name, Some(message));
    }
    let address = peer.map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |Extension(Peer(ip))| ip);
    let accounts = state.accounts.clone();
    let (name, password) = (form.name.trim().to_owned(), form.password);
    let tried = name.clone();
    let outcome =
        tokio::task::spawn_blocking(move || accounts.login(&tried, &password, address, field_client::now_ms()))
            .await
            .map_err(|e| LoginError::Store(anyhow::anyhow!("login task failed: {e}")))
            .and_then(|r| r);
    match outcome {
        Ok((token, _)) => {
            let mut response = Redirect::to("/").into_response();
            response.headers_mut().append(header::SET_COOKIE, set_cookie(SESSION, Some(&token)));
            response.headers_mut().append(header::SET_COOKIE, set_cookie(LOGIN_FORM, None));
            response
        }
        Err(LoginError::Store(e)) => page_error(&ApiError::Internal(e)),
        Err(refused @ LoginError::Limited { .. }) => {
            login_form(StatusCode::TOO_MANY_REQUESTS, &name, Some(refused.to_string()))
        }
        Err(refused) => login_form(StatusCode::UNAUTHORIZED, &name, Some(refused.to_string())),
    }
}

#[derive(Deserialize)]
struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

/// Whether a form sent from a page carries that session's form token.
pub(super) fn carries_token(viewer: &Viewer, sent: &str) -> bool {
    same_token(sent, &viewer.session.csrf)
}

/// The answer to a form without its session's form token: nothing changed.
pub(super) fn stale_form() -> Response {
    let message = "表单已过期或不是从本控制台的页面提交的，未做任何更改。请返回页面刷新后再试。";
    rendered(StatusCode::FORBIDDEN, &ErrorPage { message })
}

async fn logout(State(state): State<ApiState>, viewer: Viewer, PageForm(form): PageForm<CsrfForm>) -> Response {
    if !carries_token(&viewer, &form.csrf) {
        return stale_form();
    }
    let accounts = state.accounts.clone();
    let token = viewer.token.clone();
    match blocking(move || accounts.logout(&token, field_client::now_ms()).map_err(ApiError::Internal)).await {
        Ok(()) => to_login(),
        Err(error) => page_error(&error),
    }
}

/// One campaign in the list.
struct CampaignRow {
    summary: query::CampaignSummary,
    kind: &'static str,
    deadline: String,
    days_left: i32,
    countdown: String,
}

#[derive(Template)]
#[template(path = "campaigns.html")]
struct CampaignsPage {
    viewer: Session,
    campaigns: Vec<CampaignRow>,
}

/// The days from today (in `zone`) to `deadline`, told as people say it.
fn countdown(deadline: jiff::civil::Date, zone: &sync_core::zone::Zone) -> (i32, String) {
    let today = zone.day(&jiff::Timestamp::now().to_string()).and_then(|d| d.parse::<jiff::civil::Date>().ok());
    let days = today.and_then(|t| t.until(deadline).ok()).map_or(0, |span| span.get_days());
    let text = match days {
        d if d > 0 => format!("还剩 {d} 天"),
        0 => "就是今天".to_owned(),
        d => format!("已过 {} 天", -d),
    };
    (days, text)
}

async fn campaigns(State(state): State<ApiState>, viewer: Viewer) -> Response {
    let listed = match read(&state, query::campaigns).await {
        Ok(listed) => listed,
        Err(error) => return page_error(&error),
    };
    let campaigns = listed
        .into_iter()
        .map(|summary| {
            let zone = sync_core::zone::Zone::named(&summary.time_zone).unwrap_or_default();
            let end = summary.end_date.parse::<jiff::civil::Date>().ok();
            let deadline =
                end.and_then(|e| e.checked_add(jiff::Span::new().days(sync_core::doc::campaign::BRIEFING_DAYS)).ok());
            let (days_left, countdown) = deadline.map_or((0, String::new()), |d| countdown(d, &zone));
            let kind = sync_core::model::CampaignKind::parse(&summary.kind).map_or("", |k| k.label());
            CampaignRow {
                deadline: deadline.map(|d| d.to_string()).unwrap_or_default(),
                kind,
                days_left,
                countdown,
                summary,
            }
        })
        .collect();
    rendered(StatusCode::OK, &CampaignsPage { viewer: viewer.session, campaigns })
}

/// One enterprise's row, against the targets.
struct EnterpriseRow {
    progress: query::EnterpriseProgress,
    rate: String,
    hazards_behind: bool,
    recommended_behind: bool,
    rate_behind: bool,
}

#[derive(Template)]
#[template(path = "campaign.html")]
struct CampaignPage {
    viewer: Session,
    id: String,
    name: String,
    as_of: String,
    time_zone: String,
    enterprises: Vec<EnterpriseRow>,
    definitions: (String, String, String),
}

async fn campaign(State(state): State<ApiState>, viewer: Viewer, Path(id): Path<String>) -> Response {
    let now = CutOff::At(jiff::Timestamp::now());
    let (id, name, progress) = match about_campaign(&state, &id, move |conn, id| query::progress(conn, id, &now)).await
    {
        Ok(found) => found,
        Err(page) => return page,
    };
    let zone = sync_core::zone::Zone::named(&progress.time_zone).unwrap_or_default();
    let enterprises = progress
        .enterprises
        .into_iter()
        .map(|p| EnterpriseRow {
            rate: p.rectification_rate.map_or("—".to_owned(), |r| format!("{:.1}%", r * 100.0)),
            hazards_behind: p.hazards_found < p.hazards_target,
            recommended_behind: p.recommended_recorded < p.recommended_target,
            rate_behind: p.rectification_rate.is_none_or(|r| r < p.rectification_target),
            progress: p,
        })
        .collect();
    let d = progress.definitions;
    let page = CampaignPage {
        viewer: viewer.session,
        id,
        name,
        as_of: zone.minute(&progress.as_of),
        time_zone: progress.time_zone,
        enterprises,
        definitions: (d.hazards_found, d.recommended_recorded, d.rectification_rate),
    };
    rendered(StatusCode::OK, &page)
}

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditPage {
    viewer: Session,
    time_zone: &'static str,
    limit: u32,
    entries: Vec<(String, AuditEntry)>,
}

/// The audit log, for admins.
async fn audit(State(state): State<ApiState>, viewer: Viewer) -> Response {
    if viewer.session.role != Role::Admin {
        let message = "只有管理员可以查看操作记录。";
        return rendered(StatusCode::FORBIDDEN, &ErrorPage { message });
    }
    let accounts = state.accounts.clone();
    let entries = match blocking(move || accounts.audit_log(AUDIT_SHOWN).map_err(ApiError::Internal)).await {
        Ok(entries) => entries,
        Err(error) => return page_error(&error),
    };
    let zone = sync_core::zone::Zone::default();
    let entries = entries.into_iter().map(|e| (zone.minute(&sync_core::doc::rfc3339(e.at)), e)).collect();
    rendered(
        StatusCode::OK,
        &AuditPage { viewer: viewer.session, time_zone: sync_core::zone::DEFAULT, limit: AUDIT_SHOWN, entries },
    )
}

/// The newest entries the audit page shows.
const AUDIT_SHOWN: u32 = 500;

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    struct Console {
        _dir: tempfile::TempDir,
        state: ApiState,
        data: std::path::PathBuf,
    }

    impl Console {
        fn new() -> Self {
            let dir = tempfile::TempDir::new().unwrap();
            let state = ApiState::scratch(dir.path());
            let now = field_client::now_ms();
            state.accounts.add_user("王主任", Role::Admin, "correct-horse-battery", "测试", now).unwrap();
            state.accounts.add_user("李分析", Role::Analyst, "staple-paper-clip", "测试", now).unwrap();
            let data = dir.path().to_path_buf();
            Console { _dir: dir, state, data }
        }

        async fn send(&self, request: Request<Body>) -> Response {
            crate::http::router(self.state.clone()).oneshot(request).await.unwrap()
        }

        async fn get(&self, path: &str, session: Option<&str>) -> Response {
            let mut request = Request::get(path);
            if let Some(token) = session {
                request = request.header(header::COOKIE, format!("{SESSION}={token}"));
            }
            self.send(request.body(Body::empty()).unwrap()).await
        }

        async fn post(&self, path: &str, cookies: &str, form: &[(&str, &str)]) -> Response {
            let body = form.iter().map(|(k, v)| format!("{k}={}", urlencoding(v))).collect::<Vec<_>>().join("&");
            let request = Request::post(path)
                .header(header::COOKIE, cookies)
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(Body::from(body))
                .unwrap();
            self.send(request).await
        }

        /// Signs `name` in through the login form: the session cookie.
        async fn login(&self, name: &str, password: &str) -> Response {
            let page = self.get("/login", None).await;
            let form_cookie = cookie_set(&page, LOGIN_FORM).unwrap();
            let csrf = form_token(&text(page).await);
            let cookies = format!("{LOGIN_FORM}={form_cookie}");
            self.post("/login", &cookies, &[("csrf", &csrf), ("name", name), ("password", password)]).await
        }

        async fn session(&self, name: &str, password: &str) -> String {
            let response = self.login(name, password).await;
            assert_eq!(response.status(), StatusCode::SEE_OTHER);
            cookie_set(&response, SESSION).unwrap()
        }

        fn sessions(&self) -> i64 {
            let db = rusqlite::Connection::open(self.data.join("hq.db")).unwrap();
            db.query_row("SELECT COUNT(*) FROM console_sessions", [], |r| r.get(0)).unwrap()
        }
    }

    fn urlencoding(text: &str) -> String {
        text.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => char::from(b).to_string(),
                _ => format!("%{b:02X}"),
            })
            .collect()
    }

    /// The value a response sets cookie `name` to (not a clearing).
    fn cookie_set(response: &Response, name: &str) -> Option<String> {
        response.headers().get_all(header::SET_COOKIE).iter().filter_map(|v| v.to_str().ok()).find_map(|v| {
            let value = v.strip_prefix(&format!("{name}="))?.split(';').next()?;
            (!value.is_empty()).then(|| value.to_owned())
        })
    }

    async fn text(response: Response) -> String {
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    fn form_token(page: &str) -> String {
        let at = page.find("name=\"csrf\" value=\"").unwrap() + "name=\"csrf\" value=\"".len();
        page[at..].split('"').next().unwrap().to_owned()
    }

    fn goes_to_login(response: &Response) -> bool {
        response.status() == StatusCode::SEE_OTHER && response.headers()[header::LOCATION] == "/login"
    }

    #[tokio::test]
    async fn every_page_needs_a_session_and_sessions_end() {
        let console = Console::new();
        let campaign = format!("/campaigns/cmp-{}", "ab".repeat(16));
        let hazard = format!("/hazards/{}", field_client::new_entity_id().unwrap());
        let photo = format!("/photos/{}", "ab".repeat(32));
        let (reviews, conflicts, register) =
            (format!("{campaign}/reviews"), format!("{campaign}/conflicts"), format!("{campaign}/register?format=csv"));
        for path in [
            "/",
            campaign.as_str(),
            "/audit",
            "/hazards?level=major",
            hazard.as_str(),
            photo.as_str(),
            "/devices",
            reviews.as_str(),
            conflicts.as_str(),
            register.as_str(),
        ] {
            assert!(goes_to_login(&console.get(path, None).await), "{path} without a session");
            assert!(goes_to_login(&console.get(path, Some("made-up")).await), "{path} with a made-up session");
        }
        let token = console.session("王主任", "correct-horse-battery").await;
        let page = console.get("/", Some(&token)).await;
        assert_eq!(page.status(), StatusCode::OK);
        assert!(text(page).await.contains("总部还没有收到任何检查活动"));
        // Unused past the idle limit: ended, and forgotten.
        let db = rusqlite::Connection::open(console.data.join("hq.db")).unwrap();
        db.execute("UPDATE console_sessions SET seen_at = seen_at - ?1", [crate::accounts::IDLE + 1]).unwrap();
        assert!(goes_to_login(&console.get("/", Some(&token)).await));
        assert_eq!(console.sessions(), 0);
        // Past the absolute limit, however recently used.
        let token = console.session("王主任", "correct-horse-battery").await;
        db.execute("UPDATE console_sessions SET created_at = created_at - ?1", [crate::accounts::ABSOLUTE + 1])
            .unwrap();
        assert!(goes_to_login(&console.get("/", Some(&token)).await));
    }

    #[tokio::test]
    async fn forms_without_their_token_change_nothing() {
        let console = Console::new();
        // Login with a form token that is not the page's own.
        let page = console.get("/login", None).await;
        let form_cookie = cookie_set(&page, LOGIN_FORM).unwrap();
        let cookies = format!("{LOGIN_FORM}={form_cookie}");
        for csrf in ["", "forged"] {
            let fields = [("csrf", csrf), ("name", "王主任"), ("password", "correct-horse-battery")];
            let refused = console.post("/login", &cookies, &fields).await;
            assert_eq!(refused.status(), StatusCode::FORBIDDEN);
            assert!(cookie_set(&refused, SESSION).is_none());
            assert!(text(refused).await.contains("登录表单已过期"));
        }
        assert_eq!(console.sessions(), 0);
        // Logout without the session's form token, or with another's.
        let token = console.session("王主任", "correct-horse-battery").await;
        let other = console.session("李分析", "staple-paper-clip").await;
        let other_csrf = form_token(&text(console.get("/", Some(&other)).await).await);
        for csrf in ["", other_csrf.as_str()] {
            let refused = console.post("/logout", &format!("{SESSION}={token}"), &[("csrf", csrf)]).await;
            assert_eq!(refused.status(), StatusCode::FORBIDDEN);
        }
        let garbled = Request::post("/logout")
            .header(header::COOKIE, format!("{SESSION}={token}"))
            .header(header::CONTENT_TYPE, "text/plain")
            .body(Body::from("csrf"))
            .unwrap();
        let garbled = console.send(garbled).await;
        assert_eq!(garbled.status(), StatusCode::BAD_REQUEST);
        assert!(text(garbled).await.contains("表单内容无法识别"));
        assert_eq!(console.get("/", Some(&token)).await.status(), StatusCode::OK, "still signed in");
        let csrf = form_token(&text(console.get("/", Some(&token)).await).await);
        let out = console.post("/logout", &format!("{SESSION}={token}"), &[("csrf", &csrf)]).await;
        assert!(goes_to_login(&out));
        assert!(goes_to_login(&console.get("/", Some(&token)).await), "the pages are closed after logout");
        assert_eq!(console.sessions(), 1, "the other session goes on");
    }

    #[tokio::test]
    async fn a_decision_needs_a_session_its_form_token_and_a_listed_conflict() {
        let console = Console::new();
        let campaign = DocId::new_campaign([7; 16]);
        let dossier = DocId::dossier(&campaign, &"91640200MA76XYW123".parse().unwrap());
        let action = format!("/campaigns/{campaign}/conflicts/decide");
        let fields = |csrf: &'static str| {
            [("csrf", csrf), ("dossier", dossier.as_str()), ("path", "hazards/x/level"), ("choice", "major")]
                .map(|(k, v)| (k, v.to_owned()))
        };
        let form = fields("");
        let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
        assert!(goes_to_login(&console.post(&action, "", &form).await), "without a session");
        let token = console.session("李分析", "staple-paper-clip").await;
        let cookies = format!("{SESSION}={token}");
        assert_eq!(console.post(&action, &cookies, &form).await.status(), StatusCode::FORBIDDEN, "without its token");
        let csrf = form_token(&text(console.get("/", Some(&token)).await).await);
        let mut asked: Vec<(&str, &str)> = form.clone();
        asked[0].1 = &csrf;
        let unknown = console.post(&action, &cookies, &asked).await;
        assert_eq!(unknown.status(), StatusCode::NOT_FOUND, "no such campaign at HQ");
        assert!(text(unknown).await.contains("总部没有检查活动"));
        asked[1].1 = "not-a-dossier";
        let garbled = console.post(&action, &cookies, &asked).await;
        assert_eq!(garbled.status(), StatusCode::NOT_FOUND);
        let db = rusqlite::Connection::open(console.data.join("hq.db")).unwrap();
        let decided: i64 =
            db.query_row("SELECT COUNT(*) FROM audit_log WHERE action = '决定冲突'", [], |r| r.get(0)).unwrap();
        assert_eq!(decided, 0, "nothing was decided or recorded");
    }

    #[tokio::test]
    async fn cookies_are_secure_behind_tls() {
        let console = Console::new();
        let plain = console.get("/login", None).await;
        assert!(plain.headers().get_all(header::SET_COOKIE).iter().all(|c| !c.to_str().unwrap().contains("Secure")));
        let request = Request::get("/login").header("x-forwarded-proto", "https").body(Body::empty()).unwrap();
        let page = console.send(request).await;
        let cookies: Vec<&str> =
            page.headers().get_all(header::SET_COOKIE).iter().map(|c| c.to_str().unwrap()).collect();
        assert!(!cookies.is_empty() && cookies.iter().all(|c| c.ends_with("; Secure") && c.contains("HttpOnly")));
    }

    #[tokio::test]
    async fn wrong_passwords_are_told_alike_and_limited() {
        let console = Console::new();
        let unknown = console.login("无此人", "whatever-password").await;
        assert_eq!(unknown.status(), StatusCode::UNAUTHORIZED);
        let unknown = text(unknown).await;
        let wrong = console.login("李分析", "not-the-password").await;
        assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
        assert!(unknown.contains("用户名或密码不正确") && text(wrong).await.contains("用户名或密码不正确"));
        for _ in 0..4 {
            console.login("李分析", "not-the-password").await;
        }
        let limited = console.login("李分析", "staple-paper-clip").await;
        assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS, "even the right password waits");
        assert!(text(limited).await.contains("分钟后再试"));
        assert_eq!(console.sessions(), 0);
    }

    #[tokio::test]
    async fn the_audit_log_is_for_admins() {
        let console = Console::new();
        let analyst = console.session("李分析", "staple-paper-clip").await;
        let refused = console.get("/audit", Some(&analyst)).await;
        assert_eq!(refused.status(), StatusCode::FORBIDDEN);
        assert!(text(refused).await.contains("只有管理员"));
        let admin = console.session("王主任", "correct-horse-battery").await;
        let log = text(console.get("/audit", Some(&admin)).await).await;
        assert!(log.contains("添加用户") && log.contains("李分析") && log.contains("登录"), "{log}");
    }

    /// Revoking a device: an admin's, with the page's form token; recorded.
    #[tokio::test]
    async fn only_an_admin_revokes_and_it_is_recorded() {
        let console = Console::new();
        let tablet = sync_core::identity::DeviceKey::from_seed([7; 32]).public();
        let form = crate::register::IssueForm {
            device: tablet.to_string(),
            name: "张三".into(),
            role: "inspector".into(),
            campaigns: Vec::new(),
            enterprises: Vec::new(),
            days: 30,
            server: "127.0.0.1:4433".into(),
        };
        console.state.with_hq(move |hq| Ok(hq.issue(form, field_client::now_ms())?)).await.unwrap();
        let revocations = |console: &Console| {
            let db = rusqlite::Connection::open(console.data.join("hq.db")).unwrap();
            db.query_row("SELECT COUNT(*) FROM revocation_lists", [], |r| r.get::<_, i64>(0)).unwrap()
        };
        let analyst = console.session("李分析", "staple-paper-clip").await;
        let page = text(console.get("/devices", Some(&analyst)).await).await;
        assert!(page.contains("张三") && !page.contains("吊销</button>"), "no revoke button for an analyst");
        let csrf = form_token(&text(console.get("/", Some(&analyst)).await).await);
        let key = tablet.to_string();
        let cookies = format!("{SESSION}={analyst}");
        let refused = console.post("/devices/revoke", &cookies, &[("csrf", &csrf), ("device", &key)]).await;
        assert_eq!(refused.status(), StatusCode::FORBIDDEN);
        let admin = console.session("王主任", "correct-horse-battery").await;
        let cookies = format!("{SESSION}={admin}");
        let stale = console.post("/devices/revoke", &cookies, &[("csrf", &csrf), ("device", &key)]).await;
        assert_eq!(stale.status(), StatusCode::FORBIDDEN, "another session's form token");
        let csrf = form_token(&text(console.get("/devices", Some(&admin)).await).await);
        let unknown = console.post("/devices/revoke", &cookies, &[("csrf", &csrf), ("device", &"0".repeat(64))]).await;
        assert_eq!(unknown.status(), StatusCode::BAD_REQUEST);
        assert_eq!(revocations(&console), 0, "nothing revoked so far");
        let done = console.post("/devices/revoke", &cookies, &[("csrf", &csrf), ("device", &key)]).await;
        assert_eq!(done.status(), StatusCode::SEE_OTHER);
        assert_eq!(revocations(&console), 1);
        assert!(text(console.get("/devices", Some(&admin)).await).await.contains("已吊销"));
        let log = text(console.get("/audit", Some(&admin)).await).await;
        assert!(log.contains("吊销设备") && log.contains(&key[..16]), "{log}");
    }

    /// Text from the field is shown as text: a campaign named with markup.
    #[tokio::test]
    async fn markup_in_names_is_shown_as_text() {
        let console = Console::new();
        let db = rusqlite::Connection::open(console.data.join("read.db")).unwrap();
        let id = format!("cmp-{}", "cd".repeat(16));
        db.execute(
            "INSERT INTO campaigns (id, name, kind, start_date, end_date, time_zone)
             VALUES (?1, '<script>alert(1)</script><img src=x onerror=alert(2)>', 'mine_survey', '2026-11-24', '2026-11-25', 'Asia/Shanghai')",
            [&id],
        )
        .unwrap();
        let token = console.session("王主任", "correct-horse-battery").await;
        for path in ["/".to_owned(), format!("/campaigns/{id}")] {
            let page = text(console.get(&path, Some(&token)).await).await;
            assert!(!page.contains("<script>alert") && !page.contains("<img src=x"), "{path}: {page}");
            assert!(page.contains("&#60;script&#62;alert(1)"), "{path}: {page}");
        }
        for path in ["/campaigns/%3Cscript%3E", "/hazards/%3Cscript%3E", "/hazards?level=%3Cscript%3E", "/photos/x"] {
            let bad = console.get(path, Some(&token)).await;
            assert_eq!(bad.status(), StatusCode::BAD_REQUEST, "{path}");
            let page = text(bad).await;
            assert!(!page.contains("<script>") && page.contains("无效"), "{path}: {page}");
        }
        let listed = text(console.get(&format!("/hazards?campaign={id}"), Some(&token)).await).await;
        assert!(listed.contains("没有符合条件的隐患") && !listed.contains("<script>alert"), "{listed}");
    }
}

/// The hazard filter as its form shows it back.
#[derive(Default)]
struct FilterForm {
    campaign: String,
    enterprise: String,
    level: String,
    status: String,
    accident_type: String,
    inspector: String,
    from: String,
    to: String,
    q: String,
    sort: String,
}

impl FilterForm {
    fn of(params: &HashMap<String, String>) -> Self {
        let get = |name: &str| params.get(name).cloned().unwrap_or_default();
        FilterForm {
            campaign: get("campaign"),
            enterprise: get("enterprise"),
            level: get("level"),
            status: get("status"),
            accident_type: get("accident_type"),
            inspector: get("inspector"),
            from: get("from"),
            to: get("to"),
            q: get("q"),
            sort: get("sort"),
        }
    }
}

/// One hazard in the list.
struct HazardRow {
    h: query::HazardView,
    thumb: Option<String>,
    enterprise: String,
    deadline: String,
    found: String,
}

#[derive(Template)]
#[template(path = "hazards.html")]
struct HazardsPage {
    viewer: Session,
    filter: FilterForm,
    campaigns: Vec<(String, String)>,
    levels: Vec<(&'static str, &'static str)>,
    statuses: Vec<(&'static str, &'static str)>,
    accident_types: Vec<(String, String)>,
    sorts: [(&'static str, &'static str); 4],
    rows: Vec<HazardRow>,
    next: Option<String>,
}

/// The hazards, filtered, a page at a time.
async fn hazards(
    State(state): State<ApiState>,
    viewer: Viewer,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let filter = match super::query::hazard_filter(&params) {
        Ok(filter) => filter,
        Err(error) => return page_error(&error),
    };
    let found = read(&state, move |conn| {
        let page = query::hazards(conn, &filter)?;
        // A thumbnail only for a photo HQ holds and could read.
        let mut shown = conn.prepare_cached("SELECT 1 FROM photo_meta WHERE sha256 = ?1 AND decodable")?;
        let mut thumbs = std::collections::HashSet::new();
        for sha in page.hazards.iter().filter_map(|h| h.photos.first()).map(|p| &p.sha256) {
            if shown.exists([sha])? {
                thumbs.insert(sha.clone());
            }
        }
        Ok((page, thumbs, query::campaigns(conn)?))
    })
    .await;
    let (page, thumbs, campaigns) = match found {
        Ok(found) => found,
        Err(error) => return page_error(&error),
    };
    let zones: HashMap<String, sync_core::zone::Zone> = campaigns
        .iter()
        .map(|c| (c.id.clone(), sync_core::zone::Zone::named(&c.time_zone).unwrap_or_default()))
        .collect();
    let rows = page
        .hazards
        .into_iter()
        .map(|h| {
            let zone = zones.get(&h.campaign_id).cloned().unwrap_or_default();
            HazardRow {
                thumb: h.photos.first().map(|p| p.sha256.clone()).filter(|sha| thumbs.contains(sha)),
                enterprise: h.enterprise_name.clone().unwrap_or_else(|| h.enterprise_code.clone()),
                deadline: h.deadline.clone().unwrap_or_default(),
                found: zone.minute(&h.found_at),
                h,
            }
        })
        .collect();
    let next = page.next.map(|cursor| {
        let kept = params.iter().filter(|(k, v)| *k != "cursor" && !v.is_empty());
        let mut query: Vec<String> =
            kept.map(|(k, v)| format!("{}={}", super::query::percent(k), super::query::percent(v))).collect();
        query.sort();
        query.push(format!("cursor={cursor}"));
        format!("/hazards?{}", query.join("&"))
    });
    let page = HazardsPage {
        viewer: viewer.session,
        filter: FilterForm::of(&params),
        campaigns: campaigns.into_iter().map(|c| (c.id, c.name)).collect(),
        levels: sync_core::model::HazardLevel::ALL.iter().map(|l| (l.as_str(), l.label())).collect(),
        statuses: sync_core::model::RectificationStatus::ALL.iter().map(|s| (s.as_str(), s.label())).collect(),
        accident_types: sync_core::codes::gb6441_1986().iter().map(|t| (t.code.clone(), t.name.clone())).collect(),
        sorts: query::Sort::choices(),
        rows,
        next,
    };
    rendered(StatusCode::OK, &page)
}

/// A photo of a hazard, as its page shows it.
struct PhotoCard {
    sha: String,
    file_name: String,
    after: bool,
    decodable: bool,
    /// When and where the camera says it was taken, or why there is no copy.
    note: String,
}

#[derive(Template)]
#[template(path = "hazard.html")]
struct HazardPage {
    viewer: Session,
    d: query::HazardDetail,
    enterprise: String,
    found: String,
    deadline: String,
    time_zone: String,
    photos: Vec<PhotoCard>,
    steps: Vec<(String, query::StepView)>,
    history: Vec<(String, query::HistoryEntry)>,
}

/// One hazard with its photos, steps and signed history.
async fn hazard(State(state): State<ApiState>, viewer: Viewer, Path(id): Path<String>) -> Response {
    let Ok(id) = id.parse::<sync_core::ids::EntityId>() else {
        let shown: String = id.chars().filter(|c| !c.is_control()).take(40).collect();
        return page_error(&ApiError::BadQuery(format!("隐患编号无效：{shown}（应为 26 位）")));
    };
    let key = id.to_string();
    let found = read(&state, move |conn| {
        let Some(detail) = query::hazard(conn, &key)? else { return Ok(None) };
        let zone: Option<String> = rusqlite::OptionalExtension::optional(conn.query_row(
            "SELECT time_zone FROM campaigns WHERE id = ?1",
            [&detail.hazard.campaign_id],
            |r| r.get(0),
        ))?;
        Ok(Some((detail, zone)))
    })
    .await;
    let (mut d, zone) = match found {
        Ok(Some(found)) => found,
        Ok(None) => return page_error(&ApiError::NotFound(format!("总部没有隐患 {id}"))),
        Err(error) => return page_error(&error),
    };
    let zone = zone.and_then(|z| sync_core::zone::Zone::named(&z)).unwrap_or_default();
    let named = d.hazard.photos.iter().map(|p| (p, false)).chain(d.hazard.photos_after.iter().map(|p| (p, true)));
    let photos = named
        .map(|(p, after)| {
            let meta = d.photo_meta.get(&p.sha256);
            let note = match meta {
                None => "总部尚未收到或尚未处理这张照片".to_owned(),
                Some(m) if !m.decodable => m.note.clone().unwrap_or_default(),
                Some(m) => {
                    let taken = m.taken_at.as_deref().map(|t| format!("拍摄于 {t}"));
                    let place = m.lat.zip(m.lon).map(|(lat, lon)| format!("拍摄位置 {lat:.5}, {lon:.5}"));
                    [taken, place].into_iter().flatten().collect::<Vec<_>>().join("，")
                }
            };
            PhotoCard {
                sha: p.sha256.clone(),
                file_name: p.file_name.clone(),
                after,
                decodable: meta.is_some_and(|m| m.decodable),
                note,
            }
        })
        .collect();
    let steps = std::mem::take(&mut d.steps).into_iter().map(|s| (zone.minute(&s.at), s)).collect();
    let history = std::mem::take(&mut d.history).into_iter().map(|e| (zone.minute(&e.at), e)).collect();
    let page = HazardPage {
        viewer: viewer.session,
        enterprise: d.hazard.enterprise_name.clone().unwrap_or_else(|| d.hazard.enterprise_code.clone()),
        found: zone.minute(&d.hazard.found_at),
        deadline: d.hazard.deadline.clone().unwrap_or_default(),
        time_zone: zone.name().to_owned(),
        photos,
        steps,
        history,
        d,
    };
    rendered(StatusCode::OK, &page)
}

/// A photo, or its copy (`size=thumb|screen`), for a signed-in person.
async fn photo(
    State(state): State<ApiState>,
    _: Viewer,
    Path(sha): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    match super::photos::photo_bytes(&state, &sha, &params).await {
        Ok(bytes) => bytes.into_response(),
        Err(error) => page_error(&error),
    }
}

/// The campaign's register as a file (`format=csv|xlsx|json|zip`).
async fn register(
    State(state): State<ApiState>,
    _: Viewer,
    Path(id): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    super::query::register_file(&state, &id, &params).await.unwrap_or_else(|error| page_error(&error))
}

/// A file of the campaign's briefing (通报培训会), built from what HQ holds
/// now, with its signed manifest.
async fn briefing_file(State(state): State<ApiState>, _: Viewer, Path((id, file)): Path<(String, String)>) -> Response {
    super::briefing::briefing_file(&state, &id, &file).await.unwrap_or_else(|error| page_error(&error))
}

/// Campaign `id` (checked), its name, and what `f` reads about it; or the
/// page that says why not.
async fn about_campaign<T: Send + 'static>(
    state: &ApiState,
    id: &str,
    f: impl FnOnce(&rusqlite::Connection, &str) -> anyhow::Result<Option<T>> + Send + 'static,
) -> Result<(String, String, T), Response> {
    let id = super::query::campaign_id(id).map_err(|e| page_error(&e))?;
    let key = id.clone();
    let found = read(state, move |conn| {
        let name: Option<String> = rusqlite::OptionalExtension::optional(conn.query_row(
            "SELECT name FROM campaigns WHERE id = ?1",
            [&key],
            |r| r.get(0),
        ))?;
        Ok(match name {
            Some(name) => f(conn, &key)?.map(|found| (name, found)),
            None => None,
        })
    })
    .await
    .map_err(|e| page_error(&e))?;
    match found {
        Some((name, found)) => Ok((id, name, found)),
        None => Err(page_error(&ApiError::NotFound(format!("总部没有检查活动 {id}")))),
    }
}

#[derive(Template)]
#[template(path = "reviews.html")]
struct ReviewsPage {
    viewer: Session,
    id: String,
    name: String,
    summaries: Vec<query::ReviewSummary>,
    /// The one enterprise asked for, if any (its code and name).
    only: Option<(String, String)>,
    reviews: Vec<query::ReviewView>,
    checks: Vec<query::DocumentCheckView>,
}

#[derive(Deserialize)]
struct ReviewsQuery {
    #[serde(default)]
    enterprise: Option<String>,
}

/// A campaign's 四不放过 reviews — each enterprise summed up (mines first),
/// then each accident — and its document checks; for one enterprise with
/// `?enterprise=<code>`.
async fn reviews(
    State(state): State<ApiState>,
    viewer: Viewer,
    Path(id): Path<String>,
    Query(asked): Query<ReviewsQuery>,
) -> Response {
    let read = about_campaign(&state, &id, |conn, id| {
        let (Some(reviews), Some(checks)) = (query::reviews(conn, id)?, query::document_checks(conn, id)?) else {
            return Ok(None);
        };
        let summaries = query::review_summaries(conn, id, &reviews)?;
        Ok(Some((summaries, reviews, checks)))
    });
    let (id, name, (summaries, mut reviews, mut checks)) = match read.await {
        Ok(found) => found,
        Err(page) => return page,
    };
    let only = match asked.enterprise.filter(|code| !code.is_empty()) {
        None => None,
        Some(code) => match summaries.iter().find(|s| s.code == code) {
            Some(found) => Some((found.code.clone(), found.name.clone())),
            None => return page_error(&ApiError::NotFound(format!("本活动没有信用代码为 {code} 的企业"))),
        },
    };
    if let Some((code, _)) = &only {
        reviews.retain(|r| &r.enterprise_code == code);
        checks.retain(|c| &c.enterprise_code == code);
    }
    rendered(StatusCode::OK, &ReviewsPage { viewer: viewer.session, id, name, summaries, only, reviews, checks })
}

#[derive(Template)]
#[template(path = "conflicts.html")]
struct ConflictsPage {
    viewer: Session,
    id: String,
    name: String,
    conflicts: Vec<ConflictRow>,
    /// What the last decision did, or why it was not made.
    notice: Option<String>,
    error: Option<String>,
}

/// A conflict as the page shows it: for a field, each value (stored, as
/// read) with who wrote it.
struct ConflictRow {
    conflict: query::ConflictView,
    choices: Vec<(String, String, String)>,
}

impl ConflictRow {
    fn of(conflict: query::ConflictView) -> Self {
        let field = conflict.field.clone().unwrap_or_default();
        let choices = conflict
            .values
            .iter()
            .enumerate()
            .map(|(i, value)| {
                let writers = conflict.writers.get(i).map(|w| w.join("、")).unwrap_or_default();
                (value.clone(), sync_core::doc::conflicts::display(&field, value), writers)
            })
            .collect();
        ConflictRow { conflict, choices }
    }
}

#[derive(Deserialize)]
struct ConflictsQuery {
    #[serde(default)]
    decided: Option<String>,
}

/// A campaign's conflicts needing review.
async fn conflicts(
    State(state): State<ApiState>,
    viewer: Viewer,
    Path(id): Path<String>,
    Query(asked): Query<ConflictsQuery>,
) -> Response {
    let notice = asked.decided.map(|_| "已记录您的决定（见审计日志）。各设备下次同步时会收到它。".to_owned());
    conflicts_page(&state, viewer, &id, StatusCode::OK, notice, None).await
}

async fn conflicts_page(
    state: &ApiState,
    viewer: Viewer,
    id: &str,
    status: StatusCode,
    notice: Option<String>,
    error: Option<String>,
) -> Response {
    match about_campaign(state, id, query::conflicts).await {
        Ok((id, name, conflicts)) => {
            let conflicts = conflicts.into_iter().map(ConflictRow::of).collect();
            rendered(status, &ConflictsPage { viewer: viewer.session, id, name, conflicts, notice, error })
        }
        Err(page) => page,
    }
}

#[derive(Deserialize)]
struct DecideForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    dossier: String,
    #[serde(default)]
    path: String,
    #[serde(default)]
    choice: String,
}

/// Decides a conflict: the chosen value is written again as a change
/// signed by the console's device, naming the account, so it supersedes
/// the competing values on every device that syncs. Recorded in the audit
/// log.
async fn decide(
    State(state): State<ApiState>,
    viewer: Viewer,
    Path(id): Path<String>,
    PageForm(form): PageForm<DecideForm>,
) -> Response {
    if !carries_token(&viewer, &form.csrf) {
        return stale_form();
    }
    let account = viewer.session.user.clone();
    let refuse = |status, message: String| conflicts_page(&state, viewer, &id, status, None, Some(message));
    let Ok(dossier) = form.dossier.parse::<DocId>() else {
        return refuse(StatusCode::BAD_REQUEST, "表单里的企业档案编号无效，未做任何更改。".into()).await;
    };
    let (campaign, asked) = (id.clone(), (dossier.to_string(), form.path.clone()));
    let listed = read(&state, move |conn| {
        let label: Option<(String, String)> = rusqlite::OptionalExtension::optional(conn.query_row(
            "SELECT label, enterprise_code FROM conflicts
             WHERE campaign_id = ?1 AND dossier_id = ?2 AND path = ?3 AND kind = 'field'",
            [&campaign, &asked.0, &asked.1],
            |r| Ok((r.get(0)?, r.get(1)?)),
        ))?;
        Ok(label)
    });
    let (label, enterprise) = match listed.await {
        Ok(Some(found)) => found,
        Ok(None) => {
            let message = "这个冲突已不在待审核列表中（可能已有人决定，或设备的新修改已消除它），未做任何更改。";
            return refuse(StatusCode::CONFLICT, message.into()).await;
        }
        Err(error) => return page_error(&error),
    };
    let (path, choice) = (form.path.clone(), form.choice.clone());
    let decided = state
        .sync
        .edit_for(&dossier, &account, move |tx| {
            if !sync_core::doc::conflicts::conflicts(tx)?.iter().any(|c| c.path == path) {
                return Err(ModelError::Rule(
                    "这个字段已没有同时写入的不同值（可能已有人决定），未做任何更改。".into(),
                ));
            }
            sync_core::doc::conflicts::resolve(tx, &path, &choice)
        })
        .await;
    let shown = sync_core::doc::conflicts::display(form.path.rsplit('/').next().unwrap_or_default(), &form.choice);
    match decided {
        Ok(()) => {}
        Err(EditError::Model(e)) => return refuse(StatusCode::CONFLICT, e.to_string()).await,
        Err(EditError::NotFound(_)) => {
            return refuse(StatusCode::NOT_FOUND, "总部没有这个企业档案，未做任何更改。".into()).await;
        }
        Err(e @ EditError::Refused(_)) => return refuse(StatusCode::CONFLICT, e.to_string()).await,
        Err(e) => return page_error(&ApiError::Internal(e.into())),
    }
    let (accounts, user) = (state.accounts.clone(), account);
    let detail = format!("{enterprise} {}：{label} 定为“{shown}”", form.path);
    let recorded = blocking(move || {
        accounts.record(&user, "决定冲突", &detail, field_client::now_ms()).map_err(ApiError::Internal)
    });
    if let Err(error) = recorded.await {
        return page_error(&error);
    }
    settled(&state, &dossier, &form.path).await;
    Redirect::to(&format!("/campaigns/{id}/conflicts?decided=1")).into_response()
}

/// Waits (at most 2 s) until the read model no longer lists the conflict
/// at `path` of `dossier`, so the page the browser goes to next shows the
/// decision.
async fn settled(state: &ApiState, dossier: &DocId, path: &str) {
    for _ in 0..40 {
        let asked = (dossier.to_string(), path.to_owned());
        let listed = read(state, move |conn| {
            Ok(conn
                .query_row("SELECT 1 FROM conflicts WHERE dossier_id = ?1 AND path = ?2", [&asked.0, &asked.1], |_| {
                    Ok(())
                })
                .is_ok())
        });
        if !matches!(listed.await, Ok(true)) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[derive(Template)]
#[template(path = "devices.html")]
struct DevicesPage {
    viewer: Session,
    admin: bool,
    time_zone: &'static str,
    devices: Vec<(String, &'static str, super::api::DeviceView)>,
}

/// Every device: last sync, work kept aside, credential state; revoke for
/// admins.
async fn devices(State(state): State<ApiState>, viewer: Viewer) -> Response {
    let found = match super::api::device_views(&state).await {
        Ok(found) => found,
        Err(error) => return page_error(&error),
    };
    let zone = sync_core::zone::Zone::default();
    let devices = found
        .into_iter()
        .map(|d| {
            let last = d.last_sync_at.as_deref().map(|at| zone.minute(at)).unwrap_or_default();
            let role = sync_core::credential::Role::parse(&d.credential.role).map_or("", |r| r.label());
            (last, role, d)
        })
        .collect();
    let admin = viewer.session.role == Role::Admin;
    rendered(
        StatusCode::OK,
        &DevicesPage { viewer: viewer.session, admin, time_zone: sync_core::zone::DEFAULT, devices },
    )
}

#[derive(Deserialize)]
struct RevokeForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    device: String,
}

/// Revokes every credential of one device (admins), recorded in the audit
/// log.
async fn revoke(State(state): State<ApiState>, viewer: Viewer, PageForm(form): PageForm<RevokeForm>) -> Response {
    if !carries_token(&viewer, &form.csrf) {
        return stale_form();
    }
    if viewer.session.role != Role::Admin {
        return rendered(StatusCode::FORBIDDEN, &ErrorPage { message: "只有管理员可以吊销设备。" });
    }
    let device = form.device.clone();
    let revoked = state
        .with_hq(move |hq| {
            let form = crate::register::RevokeForm { serials: Vec::new(), devices: vec![device] };
            Ok(hq.revoke(form, field_client::now_ms())?)
        })
        .await;
    let list = match revoked {
        Ok(list) => list,
        Err(error) => return page_error(&error),
    };
    let (accounts, user) = (state.accounts.clone(), viewer.session.user.clone());
    let detail = format!("设备 {}（吊销名单第 {} 版）", form.device, list.version);
    let recorded = blocking(move || {
        accounts.record(&user, "吊销设备", &detail, field_client::now_ms()).map_err(ApiError::Internal)
    });
    match recorded.await {
        Ok(()) => Redirect::to("/devices").into_response(),
        Err(error) => page_error(&error),
    }
}

//! Signing in and out: the operator token exchanged for a session cookie.

use super::*;

#[derive(Template)]
#[template(path = "login.html")]
pub(super) struct LoginPage {
    pub(super) title: &'static str,
    pub(super) nav: bool,
    pub(super) next: String,
    pub(super) error: Option<String>,
}

#[derive(Deserialize)]
pub(super) struct NextQuery {
    pub(super) next: Option<String>,
}

pub(super) async fn login_form(Query(q): Query<NextQuery>) -> Result<Html<String>, Failure> {
    render(&LoginPage {
        title: "Sign in",
        nav: false,
        next: auth::safe_next(q.next.as_deref()),
        error: None,
    })
}

#[derive(Deserialize)]
pub(super) struct LoginForm {
    pub(super) token: String,
    pub(super) next: Option<String>,
}

pub(super) async fn login(State(state): State<AppState>, Form(f): Form<LoginForm>) -> Response {
    let next = auth::safe_next(f.next.as_deref());
    let ok = state.is_api_token(f.token.trim());
    if !ok {
        let page = render(&LoginPage {
            title: "Sign in",
            nav: false,
            next,
            error: Some("That is not the API token.".into()),
        });
        return match page {
            Ok(p) => (StatusCode::UNAUTHORIZED, p).into_response(),
            Err(e) => e.into_response(),
        };
    }
    let session = state
        .signer
        .operator_session(state.auth.api_token.as_deref().unwrap_or_default());
    let cookie =
        format!("{SESSION_COOKIE}={session}; Path=/; HttpOnly; SameSite=Strict; Max-Age=43200");
    let mut r = Redirect::to(&next).into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

pub(super) async fn logout() -> Response {
    let mut r = Redirect::to("/login").into_response();
    r.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("fleet_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
    );
    r
}

// ---------------------------------------------------------------- dashboard

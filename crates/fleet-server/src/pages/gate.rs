//! The decision page an approver's signed link opens, the decision it
//! posts (CSRF-checked), and the readable source of the documents shown.

use super::*;

pub(super) struct Notice {
    pub(super) class: &'static str,
    pub(super) text: String,
}

/// The decision page before the documents (see `gate_top.html`).
#[derive(Template)]
#[template(path = "gate_top.html")]
pub(super) struct GateTop<'a> {
    pub(super) title: String,
    pub(super) nav: bool,
    pub(super) genflow: &'a str,
    pub(super) run_short: String,
    pub(super) step: &'a str,
    pub(super) status: &'static str,
    pub(super) question: &'a str,
    pub(super) approver: &'a str,
    pub(super) approvers: &'a str,
    pub(super) required: u32,
    pub(super) notice: Option<Notice>,
}

/// The decision form, after the documents.
#[derive(Template)]
#[template(path = "gate_form.html")]
pub(super) struct GateForm<'a> {
    pub(super) view: &'a GateView,
    pub(super) open: bool,
    pub(super) action: String,
    pub(super) token: &'a str,
    pub(super) nonce: &'a str,
    pub(super) csrf: String,
    pub(super) reason: &'a str,
}

/// The review flags, each piece of evidence linking to its cited source.
#[derive(Template)]
#[template(path = "gate_flags.html")]
pub(super) struct GateFlags<'a> {
    pub(super) flags: &'a [views::FlagView],
    pub(super) flag_sources: &'a str,
    /// Built only of percent-encoded segments and fixed ASCII, so it holds
    /// nothing HTML would interpret; the template writes it unescaped once
    /// per piece of evidence.
    pub(super) source_base: String,
}

/// The redraft rounds at the top of the page; their revision links carry
/// the token, like the flags' evidence links.
#[derive(Template)]
#[template(path = "gate_rounds.html")]
pub(super) struct GateRounds<'a> {
    pub(super) rounds: &'a [crate::rounds::RoundsView],
    /// Percent-encoded segments and fixed ASCII only (see `GateFlags`).
    pub(super) revision_base: String,
    pub(super) open_up_to: usize,
}

/// A round's list of flags starts open up to this many (the redraft diff up
/// to 8 times as many lines); a longer one (the same flags again, mostly)
/// starts folded, so the documents stay near the top.
const OPEN_UP_TO: usize = 6;

/// The claims of the link, checked against the gate in the URL.
pub fn verify_link(
    state: &AppState,
    token: Option<&str>,
    run: &str,
    step: &str,
) -> Result<crate::ApproverClaims, Failure> {
    let Some(token) = token.filter(|t| !t.is_empty()) else {
        return Err(Failure::new(
            StatusCode::FORBIDDEN,
            "this page needs the signed link from your invitation (it ends in ?t=...)",
        ));
    };
    let claims = state
        .signer
        .verify_approver(token, jiff::Timestamp::now().as_second())
        .map_err(|e| Failure::new(StatusCode::FORBIDDEN, e.to_string()))?;
    if claims.run != run || claims.step != step {
        return Err(Failure::new(
            StatusCode::FORBIDDEN,
            TokenError::WrongGate.to_string(),
        ));
    }
    Ok(claims)
}

/// Where the form nonce of a decision page comes from.
pub(super) enum Nonce<'a> {
    /// The browser's cookie from an earlier visit.
    Cookie(&'a str),
    /// None yet: the link's own (`Signer::form_nonce`), set as the cookie.
    OfLink,
}

impl<'a> Nonce<'a> {
    fn of(headers: &'a HeaderMap) -> Nonce<'a> {
        match auth::cookie(headers, CSRF_COOKIE) {
            Some(n) if n.len() == 32 && n.bytes().all(|b| b.is_ascii_hexdigit()) => {
                Nonce::Cookie(n)
            }
            _ => Nonce::OfLink,
        }
    }

    fn value(&self, state: &AppState, token: &str) -> String {
        match self {
            Nonce::Cookie(n) => (*n).to_owned(),
            Nonce::OfLink => state.signer.form_nonce(token),
        }
    }
}

pub(super) fn csrf_cookie(nonce: &str) -> Option<HeaderValue> {
    HeaderValue::from_str(&format!(
        "{CSRF_COOKIE}={nonce}; Path=/runs/; HttpOnly; SameSite=Strict; Max-Age=604800"
    ))
    .ok()
}

pub(super) const HTML: &str = "text/html; charset=utf-8";

/// The parts of a decision page made for one link, nonce and notice; the
/// documents and the end of the page come with the view.
pub(super) struct GateParts {
    pub(super) top: String,
    pub(super) rounds: String,
    pub(super) form: String,
    pub(super) flags: String,
}

impl GateParts {
    fn render(
        state: &AppState,
        view: &GateView,
        claims: &crate::ApproverClaims,
        token: &str,
        nonce: &str,
        notice: Option<Notice>,
        reason: &str,
    ) -> Result<GateParts, Failure> {
        let run_seg = url_segment(&view.run_id);
        let step_seg = url_segment(&view.step);
        let top = GateTop {
            title: format!("Decide: {}", view.step),
            nav: false,
            genflow: &view.genflow,
            run_short: short(&view.run_id),
            step: &view.step,
            status: view.status.as_str(),
            question: &view.question,
            approver: &claims.approver,
            approvers: &view.approvers,
            required: view.required,
            notice,
        };
        let form = GateForm {
            view,
            open: view.status == StepStatus::Waiting,
            action: format!("/runs/{run_seg}/gates/{step_seg}"),
            token,
            csrf: state.signer.csrf(token, nonce),
            nonce,
            reason,
        };
        let source_base = format!(
            "/runs/{run_seg}/gates/{step_seg}/source?t={}",
            url_segment(token)
        );
        // Each piece of evidence with its link: what the flags add to the
        // template's own text.
        let extra: usize = view
            .flags
            .iter()
            .map(|f| 256 + f.claim.len() + f.evidence.len() * (384 + source_base.len()))
            .sum();
        let flags = render_sized(
            &GateFlags {
                flags: &view.flags,
                flag_sources: &view.flag_sources,
                source_base,
            },
            extra,
        )?
        .0;
        let rounds = if view.rounds.is_empty() {
            String::new()
        } else {
            let revision_base = format!(
                "/runs/{run_seg}/gates/{step_seg}/revision?t={}",
                url_segment(token)
            );
            let extra: usize = view.rounds.iter().map(|r| r.weight()).sum();
            render_sized(
                &GateRounds {
                    rounds: &view.rounds,
                    revision_base,
                    open_up_to: OPEN_UP_TO,
                },
                extra,
            )?
            .0
        };
        Ok(GateParts {
            top: render_sized(&top, 0)?.0,
            rounds,
            form: render_sized(&form, 2 * (token.len() + view.shown_field.len()))?.0,
            flags,
        })
    }

    /// The whole page: these parts around the view's.
    fn page(&self, view: &GateView) -> Vec<u8> {
        let parts = [
            self.top.as_str(),
            &self.rounds,
            &view.documents,
            &self.form,
            &self.flags,
            &view.end,
        ];
        let mut page = Vec::with_capacity(parts.iter().map(|p| p.len()).sum());
        for p in parts {
            page.extend_from_slice(p.as_bytes());
        }
        page
    }
}

/// The decision page answering a post that was not recorded: its notice
/// says why, and the form keeps the reason typed. Not cached.
#[allow(clippy::too_many_arguments)]
pub(super) fn gate_response(
    state: &AppState,
    view: &GateView,
    claims: &crate::ApproverClaims,
    token: &str,
    headers: &HeaderMap,
    status: StatusCode,
    notice: Option<Notice>,
    reason: &str,
) -> Result<Response, Failure> {
    let source = Nonce::of(headers);
    let nonce = source.value(state, token);
    let parts = GateParts::render(state, view, claims, token, &nonce, notice, reason)?;
    let mut r = body::Cached::new(parts.page(view)).response(status, HTML, headers);
    if let (Nonce::OfLink, Some(cookie)) = (source, csrf_cookie(&nonce)) {
        r.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    Ok(r)
}

/// A decision page as a GET answers it: a function of the gate's view (its
/// version), the link, the form nonce and whether the decision was just
/// recorded, so it is rendered and compressed once per such tuple, not per
/// request. Compressed whole, it is about a third smaller than joined from
/// parts compressed apart.
pub(crate) struct GatePage {
    pub(super) view: Arc<GateView>,
    pub(super) body: body::Cached,
    /// Sets the page's nonce as the cookie, for a browser that had none.
    pub(super) cookie: Option<HeaderValue>,
}

/// The `t` and `done` parameters of the decision page's query, decoded
/// only where they need it (a link's token never does).
pub(super) fn gate_query(query: Option<&str>) -> (Option<Cow<'_, str>>, bool) {
    let mut token = None;
    let mut done = false;
    for pair in query.unwrap_or_default().split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match &*form_decode(key) {
            "t" if token.is_none() => token = Some(form_decode(value)),
            "done" => done = true,
            _ => {}
        }
    }
    (token, done)
}

/// `application/x-www-form-urlencoded` decoding of one name or value.
pub(super) fn form_decode(text: &str) -> Cow<'_, str> {
    if !text.bytes().any(|b| b == b'%' || b == b'+') {
        return Cow::Borrowed(text);
    }
    let spaced = text.replace('+', " ");
    Cow::Owned(
        percent_encoding::percent_decode_str(&spaced)
            .decode_utf8_lossy()
            .into_owned(),
    )
}

/// GET never decides: mail scanners and link previews fetch it.
pub(super) async fn gate_page(
    State(state): State<AppState>,
    Path((id, step)): Path<(String, String)>,
    request: Request,
) -> Result<Response, Failure> {
    let headers = request.headers();
    let (token, done) = gate_query(request.uri().query());
    // Checked on every request, cached page or not.
    let claims = verify_link(&state, token.as_deref(), &id, &step)?;
    let token = token.unwrap_or_default();
    let store = state.engine.store();
    // Read before anything else: whatever is read after it is at least as new.
    let stamp = store.change_stamp().await.map_err(Failure::from_store)?;
    let source = Nonce::of(headers);
    // The run id is the full one (the link's), a step name holds no
    // newline, and the token and nonce are URL-safe: the key splits one
    // way only.
    let key = [
        claims.run.as_str(),
        &step,
        &token,
        match source {
            Nonce::Cookie(n) => n,
            Nonce::OfLink => "",
        },
        if done { "1" } else { "0" },
    ]
    .join("\n");
    let cached = state.cache.gate_pages.get(&key);
    let page = match cached {
        // Nothing committed since its view was confirmed current.
        Some(page) if page.view.confirmed_at(stamp) => page,
        cached => {
            let view = views::load_gate_at(store.as_ref(), &state.cache, &claims.run, &step, stamp)
                .await?;
            match cached.filter(|p| p.view.version == view.version) {
                Some(page) => {
                    // The same version: its view is as current as this one.
                    page.view.confirm(stamp);
                    page
                }
                None => {
                    let page = Arc::new(render_gate_page(
                        &state, view, &claims, &token, &source, done,
                    )?);
                    state.cache.gate_pages.insert_unless(
                        &key,
                        page.clone(),
                        key.len() + page.body.weight(),
                        |old| old.view.version > page.view.version,
                    );
                    page
                }
            }
        }
    };
    let mut r = page.body.response(StatusCode::OK, HTML, headers);
    if let (Nonce::OfLink, Some(cookie)) = (source, &page.cookie) {
        r.headers_mut().insert(header::SET_COOKIE, cookie.clone());
    }
    Ok(r)
}

pub(super) fn render_gate_page(
    state: &AppState,
    view: Arc<GateView>,
    claims: &crate::ApproverClaims,
    token: &str,
    source: &Nonce<'_>,
    done: bool,
) -> Result<GatePage, Failure> {
    let notice = if done {
        Some(Notice {
            class: "ok",
            text: "Your decision was recorded.".into(),
        })
    } else if view.status != StepStatus::Waiting {
        Some(Notice {
            class: "",
            text: format!(
                "This gate is {}; there is nothing left to decide.",
                view.status
            ),
        })
    } else {
        None
    };
    let nonce = source.value(state, token);
    let parts = GateParts::render(state, &view, claims, token, &nonce, notice, "")?;
    Ok(GatePage {
        body: body::Cached::new(parts.page(&view)),
        cookie: csrf_cookie(&nonce),
        view,
    })
}

#[derive(Deserialize)]
pub(super) struct DecideForm {
    pub(super) t: String,
    pub(super) nonce: String,
    pub(super) csrf: String,
    #[serde(default)]
    pub(super) shown: String,
    pub(super) verdict: String,
    #[serde(default)]
    pub(super) reason: String,
}

pub(super) async fn gate_decide(
    State(state): State<AppState>,
    Path((id, step)): Path<(String, String)>,
    headers: HeaderMap,
    Form(f): Form<DecideForm>,
) -> Result<Response, Failure> {
    let claims = verify_link(&state, Some(&f.t), &id, &step)?;
    let cookie_nonce = auth::cookie(&headers, CSRF_COOKIE).unwrap_or_default();
    if cookie_nonce.is_empty()
        || cookie_nonce != f.nonce
        || !state.signer.verify_csrf(&f.t, &f.nonce, &f.csrf)
    {
        return Err(Failure::new(
            StatusCode::FORBIDDEN,
            "the form could not be verified (it expired, or was not sent from the decision page); open your link again and decide there",
        ));
    }
    let verdict = match f.verdict.as_str() {
        "go" => Verdict::Go,
        "no_go" => Verdict::NoGo,
        other => {
            return Err(Failure::new(
                StatusCode::BAD_REQUEST,
                format!("unknown verdict `{other}` (go or no_go)"),
            ));
        }
    };
    // Without the list the engine could not tell a stale page from a fresh one.
    let Some(shown) = views::parse_shown(&f.shown) else {
        return Err(Failure::new(
            StatusCode::BAD_REQUEST,
            "the form did not say which document revisions it showed; open your link again and decide there",
        ));
    };
    let reason = f.reason.trim().to_owned();
    let request = DecisionRequest {
        run: claims.run.clone(),
        step: Some(step.clone()),
        approver: claims.approver.clone(),
        verdict,
        reason: (!reason.is_empty()).then(|| reason.clone()),
        channel: "web".into(),
        shown: Some(shown),
    };
    match state.engine.decide(request).await {
        Ok(run) => {
            state.kick(&run.id);
            Ok(Redirect::to(&format!(
                "/runs/{}/gates/{}?t={}&done=1",
                url_segment(&run.id),
                url_segment(&step),
                url_segment(&f.t)
            ))
            .into_response())
        }
        Err(e) => {
            let text = match &e {
                EngineError::StaleRevision { path, .. } => format!(
                    "Not recorded: {path} changed after this page was loaded. The page now shows the current revision; read it and decide again. ({e})"
                ),
                _ => format!("Not recorded: {e}"),
            };
            let status = Failure::from_engine(e).status;
            let view = views::load_gate(
                state.engine.store().as_ref(),
                &state.cache,
                &claims.run,
                &step,
            )
            .await?;
            gate_response(
                &state,
                &view,
                &claims,
                &f.t,
                &headers,
                status,
                Some(Notice { class: "bad", text }),
                &reason,
            )
        }
    }
}

// ---------------------------------------------------------------- cited sources

#[derive(Template)]
#[template(path = "source.html")]
pub(super) struct SourcePage {
    pub(super) title: String,
    pub(super) nav: bool,
    pub(super) back: String,
    pub(super) path: String,
    pub(super) step: String,
    pub(super) blake3: String,
    pub(super) changed: bool,
    pub(super) lines: Vec<(usize, String)>,
}

#[derive(Deserialize)]
pub(super) struct SourceQuery {
    pub(super) t: Option<String>,
    pub(super) path: String,
}

/// A corpus file a flag cites, with line anchors, for the approver holding
/// the link. Only files the run's steps read (listed in their manifests)
/// are served, never anything else under the workspace.
pub(super) async fn gate_source(
    State(state): State<AppState>,
    Path((id, step)): Path<(String, String)>,
    Query(q): Query<SourceQuery>,
) -> Result<Html<String>, Failure> {
    let claims = verify_link(&state, q.t.as_deref(), &id, &step)?;
    let store = state.engine.store();
    let step_runs = store
        .step_runs(&claims.run)
        .await
        .map_err(Failure::from_store)?;
    let listed = step_runs.iter().rev().find_map(|sr| {
        let entries = sr.manifest.as_ref()?.get("entries")?.as_array()?;
        entries.iter().find_map(|e| {
            (e.get("path")?.as_str()? == q.path).then(|| {
                (
                    sr.step.clone(),
                    e.get("blake3")
                        .and_then(|b| b.as_str())
                        .unwrap_or_default()
                        .to_owned(),
                )
            })
        })
    });
    let not_served = || Failure::not_found(format!("`{}` among the files this run read", q.path));
    let Some((read_by, blake3)) = listed else {
        return Err(not_served());
    };
    // Manifest paths are workspace-relative; refuse anything that is not.
    let relative = std::path::Path::new(&q.path);
    if q.path.starts_with("source:")
        || relative.is_absolute()
        || relative
            .components()
            .any(|c| !matches!(c, std::path::Component::Normal(_)))
    {
        return Err(not_served());
    }
    let file = state.engine.settings().root.join(relative);
    let bytes = tokio::fs::read(&file).await.map_err(|e| {
        Failure::new(
            StatusCode::NOT_FOUND,
            format!("`{}` cannot be read now: {e}", q.path),
        )
    })?;
    let changed = !blake3.is_empty() && blake3::hash(&bytes).to_hex().as_str() != blake3;
    let text = String::from_utf8_lossy(&bytes);
    render(&SourcePage {
        title: q.path.clone(),
        nav: false,
        back: format!(
            "/runs/{}/gates/{}?t={}",
            url_segment(&claims.run),
            url_segment(&step),
            url_segment(q.t.as_deref().unwrap_or_default())
        ),
        step: read_by,
        blake3,
        changed,
        lines: text
            .lines()
            .enumerate()
            .map(|(i, l)| (i + 1, l.to_owned()))
            .collect(),
        path: q.path,
    })
}

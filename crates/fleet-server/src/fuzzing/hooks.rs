//! The pure halves of `POST /hooks/github` and `/hooks/gitlab`: the
//! signature or token check and the payload-to-ticket parsing.

use crate::hooks::{Event, Refused, github, gitlab, ticket_link};
use hmac::Mac;
use sha2::{Digest, Sha256};

/// The webhook secret (GitHub) and token (GitLab) of the fuzz targets.
pub const GITHUB_SECRET: &str = "fuzz-github-secret";
pub const GITLAB_TOKEN: &str = "fuzz-gitlab-token";

/// A delivery as `Name: value` header lines, a blank line, then the body.
/// Both providers read it: each verifies with its own headers (only the
/// right signature or token passes, never a mutated one), and each parses
/// the body as its event payload whatever the signature says, so the
/// parser is explored too; a ticket read from it must give a
/// `triggered_by` that links only the ticket's own URL.
pub fn hooks(data: &[u8]) {
    let (head, body) = split_delivery(data);
    let header = |name: &str| {
        head.iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };

    let keyed = github::HmacSha256::new_from_slice(GITHUB_SECRET.as_bytes()).expect("any key");
    let signature = header("x-hub-signature-256");
    let signed = keyed.clone().chain_update(body).finalize().into_bytes();
    let verified = github::verify(&keyed, signature, body).is_ok();
    let genuine = signature
        .and_then(|s| s.strip_prefix("sha256="))
        .and_then(|h| hex::decode(h.trim()).ok())
        .is_some_and(|tag| tag.as_slice() == signed.as_slice());
    assert_eq!(verified, genuine, "GitHub signature {signature:?}");
    let right = format!("sha256={}", hex::encode(signed));
    assert!(github::verify(&keyed, Some(&right), body).is_ok());
    check(github::event(
        header("x-github-event").unwrap_or_default(),
        body,
    ));

    let digest: [u8; 32] = Sha256::digest(GITLAB_TOKEN.as_bytes()).into();
    let token = header("x-gitlab-token");
    assert_eq!(
        gitlab::verify(&digest, token).is_ok(),
        token == Some(GITLAB_TOKEN),
        "GitLab token {token:?}"
    );
    check(gitlab::event(
        header("x-gitlab-event").unwrap_or_default(),
        body,
    ));
}

fn check(event: Result<Event, Refused>) {
    let Ok(Event::Labeled(ticket)) = event else {
        return;
    };
    assert!(!ticket.added.is_empty(), "a label event added no label");
    let _ = ticket.params();
    let by = ticket.triggered_by();
    assert!(
        !by.chars().any(char::is_control),
        "control characters in {by:?}"
    );
    if let Some((_, url)) = ticket_link(&by) {
        assert_eq!(
            url, ticket.url,
            "{by:?} links another URL than the ticket's"
        );
    }
}

/// Header lines (those that are `Name: value` in UTF-8) and the body.
fn split_delivery(data: &[u8]) -> (Vec<(String, String)>, &[u8]) {
    let (head, body) = match data.windows(2).position(|w| w == b"\n\n") {
        Some(i) => (&data[..i], &data[i + 2..]),
        None => (data, &[][..]),
    };
    let head = std::str::from_utf8(head).unwrap_or("");
    let headers = head
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    (headers, body)
}

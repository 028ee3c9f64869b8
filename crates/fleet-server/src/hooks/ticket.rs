//! What a label event is about, whichever forge sent it: the ticket's
//! fields as run params, and the `triggered_by` text that names it.

use std::collections::BTreeMap;

/// An issue or a pull/merge request that just had labels added.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ticket {
    /// `github` or `gitlab`.
    pub provider: &'static str,
    /// `owner/repo` (GitHub) or `group/project` (GitLab).
    pub repo: String,
    /// How the forge writes a reference to it: `#` for issues and GitHub
    /// pull requests, `!` for GitLab merge requests.
    pub sigil: char,
    pub number: u64,
    pub title: String,
    pub body: String,
    pub url: String,
    pub author: String,
    /// Who added the label.
    pub actor: String,
    /// Every label it has now.
    pub labels: Vec<String>,
    /// The labels this event added.
    pub added: Vec<String>,
}

impl Ticket {
    /// The `ticket_*` values, of which a run gets those its genflow declares.
    pub fn params(&self) -> BTreeMap<&'static str, String> {
        BTreeMap::from([
            ("ticket_number", self.number.to_string()),
            ("ticket_title", self.title.clone()),
            ("ticket_body", self.body.clone()),
            ("ticket_url", self.url.clone()),
            ("ticket_author", self.author.clone()),
            ("ticket_labels", self.labels.join(",")),
        ])
    }

    /// `github:octo/hello#12 (@bob) https://github.com/octo/hello/issues/12`:
    /// who started the run and from where. The URL is kept only if it is a
    /// plain http(s) URL, so the run page can link it (see [`ticket_link`]).
    pub fn triggered_by(&self) -> String {
        let mut text = format!(
            "{}:{}{}{} (@{})",
            self.provider,
            printable(&self.repo),
            self.sigil,
            self.number,
            printable(&self.actor)
        );
        if is_link(&self.url) {
            text.push(' ');
            text.push_str(&self.url);
        }
        text
    }
}

/// Control characters dropped: the text is printed by the CLI too.
fn printable(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).collect()
}

/// An http(s) URL with nothing a page or a terminal could misread.
fn is_link(url: &str) -> bool {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    rest.is_some_and(|r| {
        !r.is_empty()
            && !r.starts_with('/')
            && !r
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '"' | '<' | '>' | '\\'))
    })
}

/// A run started by a label: its `triggered_by` without the URL, and the
/// URL of the ticket, for the run page to link.
pub fn ticket_link(triggered_by: &str) -> Option<(&str, &str)> {
    if !(triggered_by.starts_with("github:") || triggered_by.starts_with("gitlab:")) {
        return None;
    }
    let (text, url) = triggered_by.rsplit_once(' ')?;
    is_link(url).then_some((text, url))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ticket(url: &str) -> Ticket {
        Ticket {
            provider: "gitlab",
            repo: "group/app".into(),
            sigil: '!',
            number: 4,
            title: "t".into(),
            body: String::new(),
            url: url.into(),
            author: "alice".into(),
            actor: "bob\u{1b}[31m".into(),
            labels: vec!["a".into(), "b c".into()],
            added: vec!["a".into()],
        }
    }

    #[test]
    fn triggered_by_names_the_ticket_and_links_only_plain_urls() {
        let t = ticket("https://gitlab.example/group/app/-/merge_requests/4");
        let by = t.triggered_by();
        assert_eq!(
            by,
            "gitlab:group/app!4 (@bob[31m) https://gitlab.example/group/app/-/merge_requests/4"
        );
        assert_eq!(
            ticket_link(&by),
            Some((
                "gitlab:group/app!4 (@bob[31m)",
                "https://gitlab.example/group/app/-/merge_requests/4"
            ))
        );
        for bad in [
            "javascript:alert(1)",
            "https://x/\"onmouseover=\"",
            "ftp://x/y",
            "",
        ] {
            let by = ticket(bad).triggered_by();
            assert_eq!(by, "gitlab:group/app!4 (@bob[31m)", "{bad}");
            assert_eq!(ticket_link(&by), None, "{bad}");
        }
        assert_eq!(ticket_link("api https://example.com/x"), None);
        assert_eq!(t.params()["ticket_labels"], "a,b c");
    }
}

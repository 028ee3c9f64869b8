//! The markdown renderer's output must be inert: no script, no event
//! handler, no script URL, whatever a model wrote.

/// `markdown::render` on arbitrary text: never panics, output is [`inert`].
pub fn markdown(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let html = crate::markdown::render(&text);
    if let Err(why) = inert(&html) {
        panic!("{why} in {html:?}");
    }
}

/// Elements that run code or load another document.
const ACTIVE_ELEMENTS: &[&str] = &[
    "script", "iframe", "frame", "object", "embed", "style", "base", "meta", "link", "form", "svg",
    "math",
];

/// Attributes a browser reads as a URL (an `alt` or `title` is only text).
const URL_ATTRIBUTES: &[&str] = &[
    "href",
    "src",
    "srcset",
    "action",
    "formaction",
    "cite",
    "background",
    "poster",
    "data",
    "codebase",
    "longdesc",
    "lowsrc",
    "dynsrc",
    "usemap",
    "manifest",
    "icon",
    "ping",
    "xlink:href",
];

/// URL schemes that run code in the page.
const SCRIPT_SCHEMES: &[&str] = &["javascript:", "vbscript:", "data:"];

/// Whether sanitized HTML (as ammonia serializes it: text escaped, every
/// `<` opens a tag) is inert: no active element, no `on*` attribute, no
/// `style` attribute, and no URL attribute whose value, entity-decoded and
/// stripped the way browsers strip URLs, starts with a script scheme.
pub fn inert(html: &str) -> Result<(), String> {
    if html.to_ascii_lowercase().contains("<script") {
        return Err("`<script` survived".into());
    }
    let mut rest = html;
    while let Some(open) = rest.find('<') {
        let (tag, after) = split_tag(&rest[open + 1..]);
        rest = after;
        let (name, attrs) = parse_tag(tag);
        let name = name.trim_start_matches('/').to_ascii_lowercase();
        if ACTIVE_ELEMENTS.contains(&name.as_str()) {
            return Err(format!("element `<{name}>` survived"));
        }
        for (attr, value) in attrs {
            let attr = attr.to_ascii_lowercase();
            if attr.starts_with("on") {
                return Err(format!("event handler `{attr}` survived"));
            }
            if attr == "style" {
                return Err("a `style` attribute survived".into());
            }
            if !URL_ATTRIBUTES.contains(&attr.as_str()) {
                continue;
            }
            let url = url_as_browsers_read_it(&decode_entities(&value));
            if let Some(scheme) = SCRIPT_SCHEMES.iter().find(|s| url.starts_with(**s)) {
                return Err(format!("`{attr}` with a `{scheme}` URL survived"));
            }
        }
    }
    Ok(())
}

/// The tag's text up to its `>` (quotes respected), and what follows.
fn split_tag(s: &str) -> (&str, &str) {
    let mut quote = None;
    for (i, c) in s.char_indices() {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, '>') => return (&s[..i], &s[i + 1..]),
            _ => {}
        }
    }
    (s, "")
}

/// The tag name and its attributes (name, raw value).
fn parse_tag(tag: &str) -> (String, Vec<(String, String)>) {
    let chars: Vec<char> = tag.chars().collect();
    let mut i = 0;
    let word = |i: &mut usize| {
        let start = *i;
        while *i < chars.len() && !chars[*i].is_whitespace() && !matches!(chars[*i], '=' | '>') {
            *i += 1;
        }
        chars[start..*i].iter().collect::<String>()
    };
    let name = word(&mut i);
    let mut attrs = Vec::new();
    loop {
        while i < chars.len() && (chars[i].is_whitespace() || chars[i] == '/') {
            i += 1;
        }
        if i >= chars.len() {
            break;
        }
        let attr = word(&mut i);
        let mut value = String::new();
        if i < chars.len() && chars[i] == '=' {
            i += 1;
            if i < chars.len() && matches!(chars[i], '"' | '\'') {
                let q = chars[i];
                i += 1;
                while i < chars.len() && chars[i] != q {
                    value.push(chars[i]);
                    i += 1;
                }
                i += 1;
            } else {
                value = word(&mut i);
            }
        } else if attr.is_empty() {
            i += 1;
        }
        attrs.push((attr, value));
    }
    (name, attrs)
}

/// Numeric references and the named ones that matter for URLs.
fn decode_entities(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let after = &rest[amp + 1..];
        let end = after
            .char_indices()
            .find(|(_, c)| !(c.is_ascii_alphanumeric() || *c == '#'))
            .map_or(after.len(), |(i, _)| i);
        let name = &after[..end];
        let decoded = if let Some(num) = name.strip_prefix('#') {
            let code = match num.strip_prefix(['x', 'X']) {
                Some(hex) => u32::from_str_radix(hex, 16).ok(),
                None => num.parse().ok(),
            };
            code.and_then(char::from_u32)
        } else {
            match name.to_ascii_lowercase().as_str() {
                "amp" => Some('&'),
                "quot" => Some('"'),
                "apos" => Some('\''),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "colon" => Some(':'),
                "tab" => Some('\t'),
                "newline" => Some('\n'),
                "nbsp" => Some('\u{a0}'),
                _ => None,
            }
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = after[end..].strip_prefix(';').unwrap_or(&after[end..]);
            }
            None => {
                out.push('&');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Browsers drop leading C0 controls and spaces and every tab and newline
/// of a URL before reading its scheme, case-insensitively.
fn url_as_browsers_read_it(value: &str) -> String {
    value
        .trim_start_matches(|c: char| c <= ' ')
        .chars()
        .filter(|c| !matches!(c, '\t' | '\n' | '\r'))
        .collect::<String>()
        .to_ascii_lowercase()
}

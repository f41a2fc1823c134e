//! What GLPI shows: ticket titles, descriptions and followup bodies rendered
//! from Chatwoot messages, plus the markers that let a retried job find what
//! an earlier, interrupted attempt already created (invariant 2).
//!
//! GLPI 10 renders any content that contains a tag as HTML (and plain text
//! with `nl2br`). We always send HTML: the message text is escaped (`&`, `<`,
//! `>`) and its line breaks become `<br>`, so a message containing
//! `<script>` shows as that text and never as markup.
//!
//! Markers are bracketed tokens made only of letters, digits and `-`, so GLPI
//! 10's input sanitiser (which rewrites `&`, `<`, `>` only) leaves them as
//! they are and a search `contains` finds them on GLPI 10 and 11. The closing
//! bracket keeps `[cwgb-m12]` from matching inside `[cwgb-m123]`.

/// Who wrote a message, as shown in the followup header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sender {
    pub name: String,
    pub role: SenderRole,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SenderRole {
    Contact,
    Agent,
    Bot,
}

impl SenderRole {
    pub fn label(self) -> &'static str {
        match self {
            SenderRole::Contact => "contact",
            SenderRole::Agent => "agent",
            SenderRole::Bot => "bot",
        }
    }

    /// Chatwoot's polymorphic `messages.sender_type`; `None` (activity,
    /// template and automation messages) counts as the contact for incoming
    /// messages and as a bot otherwise.
    pub fn from_sender_type(sender_type: Option<&str>, incoming: bool) -> SenderRole {
        match sender_type {
            Some("Contact") => SenderRole::Contact,
            Some("User") => SenderRole::Agent,
            Some(_) => SenderRole::Bot,
            None if incoming => SenderRole::Contact,
            None => SenderRole::Bot,
        }
    }
}

/// A message ready to render: everything the followup (or the ticket
/// description) shows about it.
#[derive(Clone, Debug)]
pub struct RenderedMessage<'a> {
    pub message_id: i64,
    /// Chatwoot's `created_at` (UTC) as PostgreSQL prints it.
    pub created_at: &'a str,
    pub sender: &'a Sender,
    /// `processed_message_content`, else `content`.
    pub text: &'a str,
    pub deleted: bool,
    /// One line per attachment (a URL, or a note when none can be built).
    pub attachments: &'a [String],
}

/// Text shown for a message deleted in Chatwoot (Chatwoot keeps the row and
/// replaces its content; we say so explicitly in GLPI).
pub const DELETED_TEXT: &str = "This message was deleted in Chatwoot.";

/// Length limit of a ticket title taken from a message's first line.
pub const TITLE_MAX_CHARS: usize = 80;

/// GLPI's limit for a ticket's `name`.
const NAME_MAX_CHARS: usize = 255;

/// The token embedded in a ticket's description.
pub fn ticket_marker(account_id: i64, conversation_id: i64) -> String {
    format!("[cwgb-c{account_id}-v{conversation_id}]")
}

/// The token embedded in a followup created from a message.
pub fn message_marker(message_id: i64) -> String {
    format!("[cwgb-m{message_id}]")
}

/// The message id in a followup's marker, if it has one.
pub fn parse_message_marker(content: &str) -> Option<i64> {
    // The bridge writes its marker last; text typed by a user comes before.
    let start = content.rfind("[cwgb-m")? + "[cwgb-m".len();
    let rest = &content[start..];
    let end = rest.find(']')?;
    rest[..end].parse().ok()
}

/// `YYYY-MM-DD HH:MM:SS` (GLPI's datetime format) from PostgreSQL's
/// `YYYY-MM-DD HH:MM:SS[.ffffff]` text; `None` if it does not look like one.
pub fn glpi_datetime(pg_timestamp: &str) -> Option<String> {
    let head = pg_timestamp.trim().get(..19)?;
    let parsed = chrono::NaiveDateTime::parse_from_str(head, "%Y-%m-%d %H:%M:%S")
        .or_else(|_| chrono::NaiveDateTime::parse_from_str(head, "%Y-%m-%dT%H:%M:%S"))
        .ok()?;
    Some(parsed.format("%Y-%m-%d %H:%M:%S").to_string())
}

/// Escapes the three characters GLPI's HTML display would interpret.
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 8);
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            // NUL is refused by GLPI's database layer and never meaningful in chat text.
            '\0' => {}
            c => out.push(c),
        }
    }
    out
}

/// Plain text as HTML: escaped, with every line break (`\r\n`, `\n`, `\r`)
/// as `<br>`.
pub fn text_to_html(text: &str) -> String {
    let normalized = text.replace("\r\n", "\n").replace('\r', "\n");
    normalized
        .split('\n')
        .map(escape_html)
        .collect::<Vec<_>>()
        .join("<br>")
}

/// The header line of a followup: `[YYYY-MM-DD HH:MM:SS UTC] Name (role):`.
pub fn header_line(created_at: &str, sender: &Sender) -> String {
    let at = glpi_datetime(created_at).unwrap_or_else(|| created_at.to_owned());
    format!("[{at} UTC] {} ({}):", sender.name, sender.role.label())
}

/// The message as HTML, without marker: header, text, attachment list.
/// Serves both followups and the ticket description.
pub fn message_html(message: &RenderedMessage<'_>) -> String {
    let mut html = text_to_html(&header_line(message.created_at, message.sender));
    html.push_str("<br>");
    let text = if message.deleted {
        DELETED_TEXT
    } else {
        message.text
    };
    html.push_str(&text_to_html(text));
    if !message.attachments.is_empty() && !message.deleted {
        html.push_str("<br><br>Attachments:");
        for line in message.attachments {
            html.push_str("<br>- ");
            html.push_str(&text_to_html(line));
        }
    }
    html
}

/// The body of the followup for a message: the message, then its marker.
pub fn followup_content(message: &RenderedMessage<'_>) -> String {
    let mut html = message_html(message);
    html.push_str("<br><br>Chatwoot ref ");
    html.push_str(&message_marker(message.message_id));
    html
}

/// What the ticket description says besides the first message.
#[derive(Clone, Debug, Default)]
pub struct DescriptionExtras<'a> {
    /// `{CHATWOOT_FRONTEND_URL}/app/accounts/<a>/conversations/<display_id>`.
    pub conversation_link: Option<&'a str>,
    /// Contact mode: GLPI cannot make a Contact a ticket actor, so the
    /// contact's details are written into the description.
    pub contact_details: Option<&'a [(String, String)]>,
}

/// What the ticket description has after the first message: the contact's
/// details (contact mode), the link to the conversation, and the ticket
/// marker with the first message's marker (so a retried job can tell which
/// message the description holds). Stored with the ticket mapping, so a late
/// attachment or a deletion re-renders the description exactly.
pub fn description_tail(
    account_id: i64,
    conversation_id: i64,
    first_message_id: i64,
    extras: &DescriptionExtras<'_>,
) -> String {
    let mut html = String::new();
    if let Some(details) = extras.contact_details {
        if !details.is_empty() {
            html.push_str("<br><br>Contact:");
            for (label, value) in details {
                html.push_str("<br>- ");
                html.push_str(&text_to_html(&format!("{label}: {value}")));
            }
        }
    }
    if let Some(link) = extras.conversation_link {
        html.push_str("<br><br>Conversation in Chatwoot: ");
        html.push_str(&escape_html(link));
    }
    html.push_str("<br><br>Chatwoot ref ");
    html.push_str(&ticket_marker(account_id, conversation_id));
    html.push(' ');
    html.push_str(&message_marker(first_message_id));
    html
}

/// The ticket description: the first message rendered like a followup, then
/// [`description_tail`].
pub fn ticket_description(first_message: &RenderedMessage<'_>, tail: &str) -> String {
    let mut html = message_html(first_message);
    html.push_str(tail);
    html
}

/// The ticket title: the email subject, else the first non-blank line of the
/// first message cut to 80 characters, else `Conversation #<display_id>`.
pub fn ticket_title(
    mail_subject: Option<&str>,
    first_message_text: &str,
    display_id: i64,
) -> String {
    if let Some(subject) = mail_subject.map(str::trim).filter(|s| !s.is_empty()) {
        // GLPI's `name` column is a varchar(255).
        return strip_nul(&subject.chars().take(NAME_MAX_CHARS).collect::<String>());
    }
    let first_line = first_message_text
        .lines()
        .map(str::trim)
        .find(|line| !line.is_empty());
    match first_line {
        Some(line) => strip_nul(&line.chars().take(TITLE_MAX_CHARS).collect::<String>()),
        None => format!("Conversation #{display_id}"),
    }
}

/// The link to a conversation in Chatwoot's UI (it uses `display_id`, not
/// the internal id).
pub fn conversation_link(frontend_url: &str, account_id: i64, display_id: i64) -> String {
    format!(
        "{}/app/accounts/{account_id}/conversations/{display_id}",
        frontend_url.trim_end_matches('/')
    )
}

fn strip_nul(text: &str) -> String {
    text.replace('\0', "")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent() -> Sender {
        Sender {
            name: "Alice Agent".into(),
            role: SenderRole::Agent,
        }
    }

    #[test]
    fn datetime_drops_fraction_and_checks_shape() {
        assert_eq!(
            glpi_datetime("2024-01-15 10:30:00.123456").as_deref(),
            Some("2024-01-15 10:30:00")
        );
        assert_eq!(
            glpi_datetime("2024-01-15 10:30:00").as_deref(),
            Some("2024-01-15 10:30:00")
        );
        assert_eq!(glpi_datetime("yesterday"), None);
    }

    #[test]
    fn text_is_escaped_and_line_breaks_survive() {
        assert_eq!(
            text_to_html("a & b\n<script>x</script>\r\nend"),
            "a &amp; b<br>&lt;script&gt;x&lt;/script&gt;<br>end"
        );
    }

    #[test]
    fn followup_has_header_text_attachments_and_marker() {
        let sender = agent();
        let attachments = vec!["https://files.example/a.png".to_string()];
        let msg = RenderedMessage {
            message_id: 42,
            created_at: "2024-01-15 10:30:00.5",
            sender: &sender,
            text: "Hello <b>you</b>\nbye",
            deleted: false,
            attachments: &attachments,
        };
        assert_eq!(
            followup_content(&msg),
            "[2024-01-15 10:30:00 UTC] Alice Agent (agent):<br>Hello &lt;b&gt;you&lt;/b&gt;<br>bye\
             <br><br>Attachments:<br>- https://files.example/a.png<br><br>Chatwoot ref [cwgb-m42]"
        );
    }

    #[test]
    fn deleted_message_says_so_and_drops_attachments() {
        let sender = agent();
        let attachments = vec!["x".to_string()];
        let msg = RenderedMessage {
            message_id: 1,
            created_at: "2024-01-15 10:30:00",
            sender: &sender,
            text: "secret",
            deleted: true,
            attachments: &attachments,
        };
        let html = followup_content(&msg);
        assert!(html.contains(DELETED_TEXT));
        assert!(!html.contains("secret"));
        assert!(!html.contains("Attachments:"));
    }

    #[test]
    fn title_rules() {
        assert_eq!(ticket_title(Some(" Printer "), "hi", 3), "Printer");
        assert_eq!(
            ticket_title(Some(""), "\n  first line \nsecond", 3),
            "first line"
        );
        let long = "é".repeat(100);
        assert_eq!(ticket_title(None, &long, 3).chars().count(), 80);
        assert_eq!(ticket_title(None, "  \n ", 7), "Conversation #7");
    }

    #[test]
    fn message_markers_parse_back() {
        let sender = agent();
        let msg = RenderedMessage {
            message_id: 4321,
            created_at: "2024-01-15 10:30:00",
            sender: &sender,
            text: "[cwgb-m99] typed by a user",
            deleted: false,
            attachments: &[],
        };
        assert_eq!(parse_message_marker(&followup_content(&msg)), Some(4321));
        assert_eq!(parse_message_marker("no marker"), None);
    }

    #[test]
    fn markers_do_not_prefix_each_other() {
        assert!(!message_marker(123).contains(&message_marker(12)));
        assert!(!ticket_marker(1, 123).contains(&ticket_marker(1, 12)));
    }

    #[test]
    fn description_has_link_details_and_markers() {
        let sender = Sender {
            name: "Test User".into(),
            role: SenderRole::Contact,
        };
        let msg = RenderedMessage {
            message_id: 9,
            created_at: "2024-01-15 10:30:00",
            sender: &sender,
            text: "Help",
            deleted: false,
            attachments: &[],
        };
        let details = vec![("Email".to_string(), "t@example.com".to_string())];
        let link = conversation_link("https://chat.example/", 1, 5);
        assert_eq!(link, "https://chat.example/app/accounts/1/conversations/5");
        let tail = description_tail(
            1,
            77,
            msg.message_id,
            &DescriptionExtras {
                conversation_link: Some(&link),
                contact_details: Some(&details),
            },
        );
        let html = ticket_description(&msg, &tail);
        assert_eq!(
            html,
            "[2024-01-15 10:30:00 UTC] Test User (contact):<br>Help<br><br>Contact:<br>- Email: t@example.com\
             <br><br>Conversation in Chatwoot: https://chat.example/app/accounts/1/conversations/5\
             <br><br>Chatwoot ref [cwgb-c1-v77] [cwgb-m9]"
        );
    }
}

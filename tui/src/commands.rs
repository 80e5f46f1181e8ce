//! What a line typed into the input means: text to say, or a `/command`. Pure parsing; a
//! bad command becomes a one-line hint for the user, never an error that stops anything.

/// Every command: name, arguments, what it does. The help overlay and Tab completion use it.
pub const COMMANDS: &[(&str, &str, &str)] = &[
    (
        "join",
        "ROOM|INVITE",
        "join a public room, or a private one by invite",
    ),
    (
        "create",
        "ROOM",
        "create a private room and show its invite",
    ),
    (
        "invite",
        "[ROOM]",
        "a room's invite; also /kick /admin NICK, /members",
    ),
    ("leave", "[ROOM]", "leave this room (or ROOM)"),
    ("nick", "NAME", "change your name"),
    ("me", "TEXT", "an action: * you TEXT"),
    ("alert", "TEXT", "flash and ring the bell at every member"),
    ("peers", "", "list the connected peers"),
    ("search", "TEXT", "search this room's stored history"),
    ("mute", "NICK", "stop playing NICK's voice (/unmute NICK)"),
    (
        "msg",
        "NICK TEXT",
        "a direct message to NICK, in the room @NICK",
    ),
    (
        "verify",
        "NICK [ok]",
        "safety numbers to compare; ok marks it (/unverify)",
    ),
    (
        "web-invite",
        "[NAME]",
        "a one-time join link for the browser client (--web)",
    ),
    ("help", "", "keys and commands (F1)"),
    ("quit", "", "leave hark (Ctrl+C)"),
];

/// Commands the help overlay names inside another's line (it has one screen), still completed
/// and suggested like the others.
const MORE_COMMANDS: &[&str] = &["kick", "admin", "members"];

/// `/verify NICK` shows the safety number; `/verify NICK ok` marks NICK verified once the
/// numbers matched; `/unverify NICK` takes the mark away.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VerifyStep {
    Show,
    Confirm,
    Revoke,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Submitted {
    /// A chat line for the current room.
    Say(String),
    Command(UiCommand),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UiCommand {
    Join(String),
    Create(String),
    /// The room, or the current one.
    Invite(Option<String>),
    Leave(Option<String>),
    Nick(String),
    Me(String),
    Alert(String),
    Peers,
    Search(String),
    /// Who, and mute (`true`) or unmute.
    Mute(String, bool),
    /// Who, and what to do with their verified mark.
    Verify(String, VerifyStep),
    /// A direct message: to whom (a name, `name#id`, or a peer id), and the text.
    Msg(String, String),
    /// Take someone out of the current private room (a name, `name#id`, or a peer id).
    Kick(String),
    /// Make someone an admin of the current private room.
    Admin(String),
    /// Who is in the current private room.
    Members,
    /// A join link for the browser client, proposing this name to the new user.
    WebInvite(Option<String>),
    Help,
    Quit,
}

/// Parse a submitted line. `Ok(None)`: nothing to do (an empty line). `Err`: a one-line hint.
pub fn parse(line: &str) -> Result<Option<Submitted>, String> {
    if line.trim().is_empty() {
        return Ok(None);
    }
    let Some(command_text) = line.strip_prefix('/') else {
        return Ok(Some(Submitted::Say(line.to_owned())));
    };
    // `//text` says `/text` (the irssi habit).
    if command_text.starts_with('/') {
        return Ok(Some(Submitted::Say(command_text.to_owned())));
    }
    let (word, rest) = match command_text.split_once(char::is_whitespace) {
        Some((word, rest)) => (word, rest.trim()),
        None => (command_text, ""),
    };
    let word = word.to_lowercase();
    let one_word = |what: &str| -> Result<String, String> {
        match rest.split_whitespace().count() {
            0 => Err(format!("/{word} needs {what} (see /help)")),
            1 => Ok(rest.to_owned()),
            _ => Err(format!("/{word} takes one word: {what}")),
        }
    };
    let optional_word = || -> Result<Option<String>, String> {
        match rest.split_whitespace().count() {
            0 => Ok(None),
            1 => Ok(Some(rest.to_owned())),
            _ => Err(format!("/{word} takes at most one room name")),
        }
    };
    let text = |what: &str| -> Result<String, String> {
        if rest.is_empty() {
            Err(format!("/{word} needs {what}"))
        } else {
            Ok(rest.to_owned())
        }
    };
    let command = match word.as_str() {
        "" => return Err("a command name goes after the / (see /help; // sends a /)".into()),
        // An invite copied from a wrapped line comes in pieces: whitespace is never part of one.
        "join" | "j"
            if rest
                .get(..5)
                .is_some_and(|p| p.eq_ignore_ascii_case("hark:")) =>
        {
            UiCommand::Join(rest.split_whitespace().collect())
        }
        "join" | "j" => UiCommand::Join(one_word("a room name or an invite: /join ops")?),
        "create" => UiCommand::Create(one_word("a room name: /create ops")?),
        "invite" => UiCommand::Invite(optional_word()?),
        "leave" | "part" => UiCommand::Leave(optional_word()?),
        "nick" => UiCommand::Nick(one_word("a name without spaces: /nick alice")?),
        "me" => UiCommand::Me(text("some text: /me waves")?),
        "alert" => UiCommand::Alert(text("some text: /alert fire on deck 2")?),
        "peers" => UiCommand::Peers,
        "search" => UiCommand::Search(text("words to look for: /search pump")?),
        "mute" => UiCommand::Mute(one_word("a name: /mute bob (or bob#3f9a)")?, true),
        "unmute" => UiCommand::Mute(one_word("a name: /unmute bob (or bob#3f9a)")?, false),
        "verify" => {
            let mut words = rest.split_whitespace();
            match (words.next(), words.next(), words.next()) {
                (Some(who), None, _) => UiCommand::Verify(who.to_owned(), VerifyStep::Show),
                (Some(who), Some(ok), None) if ok.eq_ignore_ascii_case("ok") => {
                    UiCommand::Verify(who.to_owned(), VerifyStep::Confirm)
                }
                (None, _, _) => {
                    return Err("/verify needs a name: /verify bob (or bob#3f9a)".into())
                }
                _ => {
                    return Err(
                        "/verify takes a name, and ok once the numbers matched: /verify bob ok"
                            .into(),
                    )
                }
            }
        }
        "unverify" => UiCommand::Verify(
            one_word("a name: /unverify bob (or bob#3f9a)")?,
            VerifyStep::Revoke,
        ),
        "web-invite" => UiCommand::WebInvite(match rest.split_whitespace().count() {
            0 => None,
            1 => Some(rest.to_owned()),
            _ => return Err("/web-invite takes at most one name: /web-invite alice".into()),
        }),
        "kick" => UiCommand::Kick(one_word("a name: /kick carol (or carol#3f9a)")?),
        "admin" | "op" => UiCommand::Admin(one_word("a name: /admin bob (or bob#a1c2)")?),
        "members" => UiCommand::Members,
        "help" => UiCommand::Help,
        "quit" | "exit" => UiCommand::Quit,
        "msg" | "query" => match rest.split_once(char::is_whitespace) {
            Some((who, text)) if !text.trim().is_empty() => {
                UiCommand::Msg(who.to_owned(), text.trim().to_owned())
            }
            _ => {
                return Err(format!(
                    "/{word} needs a name and some text: /{word} bob hello"
                ))
            }
        },
        other => return Err(unknown(other)),
    };
    Ok(Some(Submitted::Command(command)))
}

fn unknown(word: &str) -> String {
    let close: Vec<String> = COMMANDS
        .iter()
        .map(|(name, _, _)| *name)
        .chain(["unmute", "unverify"])
        .chain(MORE_COMMANDS.iter().copied())
        .filter(|name| {
            name.starts_with(word) || word.starts_with(name) || one_typo_apart(word, name)
        })
        .map(|name| format!("/{name}"))
        .collect();
    let word: String = word.chars().take(20).collect();
    if close.is_empty() {
        format!("unknown command /{word}: /help lists the commands")
    } else {
        format!(
            "unknown command /{word}: did you mean {}?",
            close.join(" or ")
        )
    }
}

/// Whether `a` becomes `b` by one typo: a letter left out, added, changed, or two
/// neighbours swapped (`/jion`, `/jon`, `/joim`, `/qiut`).
fn one_typo_apart(a: &str, b: &str) -> bool {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    if a.len().abs_diff(b.len()) > 1 || a.len() < 2 || a == b {
        return false;
    }
    let start = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let (ra, rb) = (&a[start..], &b[start..]);
    match ra.len().cmp(&rb.len()) {
        std::cmp::Ordering::Equal => {
            ra[1..] == rb[1..]
                || (ra.len() >= 2 && ra[0] == rb[1] && ra[1] == rb[0] && ra[2..] == rb[2..])
        }
        std::cmp::Ordering::Less => ra == &rb[1..],
        std::cmp::Ordering::Greater => &ra[1..] == rb,
    }
}

/// Whether `typed` (a command with its slash, nothing after it) takes a room as its argument.
pub fn takes_room(typed: &str) -> bool {
    matches!(typed, "/join" | "/j" | "/leave" | "/part" | "/invite")
}

/// Command names starting with `prefix` (without the `/`), for Tab completion.
pub fn complete(prefix: &str) -> Vec<String> {
    let prefix = prefix.to_lowercase();
    COMMANDS
        .iter()
        .map(|(name, _, _)| *name)
        .chain(MORE_COMMANDS.iter().copied())
        .filter(|name| name.starts_with(&prefix))
        .map(|name| format!("/{name}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_invite_pasted_from_a_wrapped_line_is_joined_whole() {
        let pasted = parse("/join hark:3xY7pQ 9kLm2")
            .unwrap()
            .expect("a command");
        assert!(
            matches!(pasted, Submitted::Command(UiCommand::Join(ref invite)) if invite == "hark:3xY7pQ9kLm2"),
            "{pasted:?}"
        );
        assert!(parse("/join ops deck").unwrap_err().contains("one word"));
    }

    #[test]
    fn one_typo_away_suggests_the_command() {
        for typo in [
            "jion", "jon", "joim", "hepl", "qiut", "nik", "serch", "crate", "ivnite",
        ] {
            let hint = parse(&format!("/{typo}")).unwrap_err();
            assert!(hint.contains("did you mean /"), "/{typo}: {hint}");
        }
        assert!(parse("/jion").unwrap_err().contains("/join"));
        assert!(parse("/unmtue").unwrap_err().contains("/unmute"));
        let far = parse("/xyzzy").unwrap_err();
        assert!(far.contains("/help lists"), "{far}");
        assert!(!one_typo_apart("me", "me"));
        assert!(
            !one_typo_apart("x", "me"),
            "one letter is too little to guess from"
        );
    }

    #[test]
    fn membership_commands_parse() {
        let command = |line: &str| match parse(line) {
            Ok(Some(Submitted::Command(c))) => c,
            other => panic!("{line}: {other:?}"),
        };
        assert_eq!(command("/kick carol"), UiCommand::Kick("carol".into()));
        assert_eq!(
            command("/admin bob#a1c2"),
            UiCommand::Admin("bob#a1c2".into())
        );
        assert_eq!(command("/members"), UiCommand::Members);
        assert!(parse("/kick").unwrap_err().contains("/kick needs"));
        assert!(parse("/kick a b").is_err());
        assert_eq!(complete("mem"), ["/members"]);
        assert!(parse("/admn").unwrap_err().contains("/admin"));
    }
}

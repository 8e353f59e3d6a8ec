//! Matching what a contact sent to a question's options.

use super::event::Content;
use crate::workflow::steps::AnswerOption;

/// Case- and whitespace-insensitive form of a label: "Agree&proceed " == "AGREE & PROCEED".
pub fn normalize(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_whitespace())
        .flat_map(char::to_lowercase)
        .collect()
}

/// The option an answer picks: by payload id (a tapped button), by its label typed as
/// text, or by its number ("1") for channels without buttons. `None`: an invalid answer.
pub fn choose<'a>(options: &'a [AnswerOption], content: &Content) -> Option<&'a AnswerOption> {
    match content {
        Content::Choice { id, label } => options
            .iter()
            .find(|o| o.id == *id)
            .or_else(|| by_text(options, label)),
        Content::Text { text } => by_text(options, text),
        Content::Other { .. } => None,
    }
}

fn by_text<'a>(options: &'a [AnswerOption], text: &str) -> Option<&'a AnswerOption> {
    let typed = normalize(text);
    if typed.is_empty() {
        return None;
    }
    options
        .iter()
        .find(|o| normalize(&o.label) == typed)
        .or_else(|| {
            let number: usize = typed.parse().ok()?;
            options.get(number.checked_sub(1)?)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> Vec<AnswerOption> {
        ["AGREE & PROCEED", "Not now"]
            .iter()
            .enumerate()
            .map(|(i, label)| AnswerOption {
                id: format!("o{i}"),
                label: label.to_string(),
                next: "x".into(),
            })
            .collect()
    }

    fn text(t: &str) -> Content {
        Content::Text { text: t.into() }
    }

    #[test]
    fn typed_label_matches_in_any_case_and_spacing() {
        let opts = options();
        for typed in [
            "AGREE & PROCEED",
            "agree & proceed",
            "  Agree&Proceed ",
            "AGREE  &\tPROCEED",
        ] {
            assert_eq!(
                choose(&opts, &text(typed)).map(|o| o.id.as_str()),
                Some("o0"),
                "{typed:?}"
            );
        }
        assert_eq!(
            choose(&opts, &text("not NOW")).map(|o| o.id.as_str()),
            Some("o1")
        );
    }

    #[test]
    fn option_numbers_match_only_within_range() {
        let opts = options();
        assert_eq!(
            choose(&opts, &text(" 2 ")).map(|o| o.id.as_str()),
            Some("o1")
        );
        assert!(choose(&opts, &text("0")).is_none());
        assert!(choose(&opts, &text("3")).is_none());
        assert!(choose(&opts, &text("-1")).is_none());
    }

    #[test]
    fn payload_id_wins_and_unknown_payload_falls_back_to_label() {
        let opts = options();
        let tapped = Content::Choice {
            id: "o1".into(),
            label: "AGREE & PROCEED".into(),
        };
        assert_eq!(choose(&opts, &tapped).map(|o| o.id.as_str()), Some("o1"));
        let stale = Content::Choice {
            id: "gone".into(),
            label: "agree & proceed".into(),
        };
        assert_eq!(choose(&opts, &stale).map(|o| o.id.as_str()), Some("o0"));
    }

    #[test]
    fn other_text_media_and_blank_are_invalid() {
        let opts = options();
        for content in [
            text("yes"),
            text("   "),
            text("AGREE"),
            Content::Other {
                kind: "image".into(),
            },
        ] {
            assert!(choose(&opts, &content).is_none(), "{content:?}");
        }
    }
}

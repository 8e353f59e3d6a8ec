//! The channels' keys, read from a Secrets Manager secret once per cold start. In
//! environment variables they would be readable by anyone allowed
//! `lambda:GetFunctionConfiguration`, and changing one would need a deploy.
//!
//! The secret is a JSON object of strings (`{"WHATSAPP_APP_SECRET": "...", ...}`).
//! `ASSENT_CHANNEL_SECRET` names it and `ASSENT_CHANNELS` lists the channels served;
//! each of those must have all its keys in the secret, or the function does not start.
//! Without `ASSENT_CHANNEL_SECRET` the keys come from the environment, as for the local
//! runner.

use serde_json::Value;
use std::collections::BTreeMap;

use super::{Env, SetupError};

pub const SECRET_VAR: &str = "ASSENT_CHANNEL_SECRET";
pub const CHANNELS_VAR: &str = "ASSENT_CHANNELS";

/// The keys the secret holds for each channel.
pub const KEYS: &[(&str, &[&str])] = &[
    (
        "whatsapp",
        &[
            "WHATSAPP_APP_SECRET",
            "WHATSAPP_VERIFY_TOKEN",
            "WHATSAPP_ACCESS_TOKEN",
        ],
    ),
    ("telegram", &["TELEGRAM_SECRET_TOKEN", "TELEGRAM_BOT_TOKEN"]),
    (
        "messenger",
        &[
            "MESSENGER_APP_SECRET",
            "MESSENGER_VERIFY_TOKEN",
            "MESSENGER_PAGE_TOKEN",
        ],
    ),
    ("twilio", &["TWILIO_AUTH_TOKEN", "TWILIO_ACCOUNT_SID"]),
    ("web", &["WEB_SESSION_SECRET"]),
];

/// Whether `name` is a key that lives in the secret rather than in the environment.
pub fn is_key(name: &str) -> bool {
    KEYS.iter().any(|(_, keys)| keys.contains(&name))
}

/// Where the keys are: the secret's id and the channels to take from it.
pub struct Source {
    pub secret_id: String,
    pub channels: Vec<&'static str>,
}

/// Reads `ASSENT_CHANNEL_SECRET` and `ASSENT_CHANNELS`. `None`: no secret is configured.
pub fn source(env: &dyn Env) -> Result<Option<Source>, SetupError> {
    let listed = env.var(CHANNELS_VAR).unwrap_or_default();
    let Some(secret_id) = env.var(SECRET_VAR) else {
        return Ok(None);
    };
    let mut channels = Vec::new();
    for name in listed.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let Some((known, _)) = KEYS.iter().find(|(channel, _)| *channel == name) else {
            return Err(SetupError::Invalid {
                name: CHANNELS_VAR,
                message: format!("no channel is called {name:?}"),
            });
        };
        channels.push(*known);
    }
    Ok(Some(Source {
        secret_id,
        channels,
    }))
}

/// An environment whose channel keys come from the secret: the served channels' keys,
/// and none of the others, whatever the process environment says.
pub struct WithSecret<E> {
    env: E,
    keys: Option<BTreeMap<String, String>>,
}

impl<E: Env> Env for WithSecret<E> {
    fn var(&self, name: &str) -> Option<String> {
        match &self.keys {
            Some(keys) if is_key(name) => keys.get(name).cloned(),
            _ => self.env.var(name),
        }
    }
}

impl<E: Env> WithSecret<E> {
    /// `env` with the keys of `secret` (the secret's text) for the channels `source` lists.
    /// Errors name the missing key, never a value.
    pub fn new(env: E, source: &Source, secret: &str) -> Result<Self, SetupError> {
        let invalid = |message: String| SetupError::Invalid {
            name: SECRET_VAR,
            message,
        };
        let Ok(Value::Object(object)) = serde_json::from_str::<Value>(secret) else {
            return Err(invalid("the secret is not a JSON object of strings".into()));
        };
        let mut keys = BTreeMap::new();
        for (channel, names) in KEYS.iter().filter(|(c, _)| source.channels.contains(c)) {
            for name in *names {
                match object.get(*name) {
                    Some(Value::String(value)) if !value.trim().is_empty() => {
                        keys.insert(name.to_string(), value.clone());
                    }
                    _ => {
                        return Err(invalid(format!(
                            "the secret has no {name}, which {channel} needs"
                        )));
                    }
                }
            }
        }
        Ok(WithSecret {
            env,
            keys: Some(keys),
        })
    }

    /// `env` as it is: no secret is configured.
    pub fn without(env: E) -> Self {
        WithSecret { env, keys: None }
    }
}

/// Reads the secret `env` names (one GetSecretValue call), or passes `env` through when
/// it names none.
pub async fn load<E: Env>(
    client: &aws_sdk_secretsmanager::Client,
    env: E,
) -> Result<WithSecret<E>, SetupError> {
    let Some(source) = source(&env)? else {
        return Ok(WithSecret::without(env));
    };
    let answer = client
        .get_secret_value()
        .secret_id(&source.secret_id)
        .send()
        .await
        .map_err(|e| SetupError::Invalid {
            name: SECRET_VAR,
            message: format!(
                "could not read the secret: {}",
                aws_smithy_types::error::display::DisplayErrorContext(e)
            ),
        })?;
    let text = answer.secret_string().unwrap_or_default();
    WithSecret::new(env, &source, text)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Vars(BTreeMap<&'static str, &'static str>);

    impl Env for Vars {
        fn var(&self, name: &str) -> Option<String> {
            self.0.get(name).map(|v| v.to_string())
        }
    }

    fn whatsapp_only() -> Source {
        Source {
            secret_id: "assent/channels".into(),
            channels: vec!["whatsapp"],
        }
    }

    const SECRET: &str = r#"{"WHATSAPP_APP_SECRET": "a", "WHATSAPP_VERIFY_TOKEN": "v",
        "WHATSAPP_ACCESS_TOKEN": "t", "TELEGRAM_BOT_TOKEN": "not served"}"#;

    #[test]
    fn served_channels_keys_come_from_the_secret_and_the_rest_from_the_environment() {
        let env = Vars(BTreeMap::from([
            ("WHATSAPP_APP_SECRET", "stale, from the environment"),
            ("TELEGRAM_BOT_TOKEN", "from the environment"),
            ("WHATSAPP_API_BASE", "http://graph"),
        ]));
        let env = WithSecret::new(env, &whatsapp_only(), SECRET).unwrap();
        assert_eq!(env.var("WHATSAPP_APP_SECRET").as_deref(), Some("a"));
        assert_eq!(
            env.var("WHATSAPP_API_BASE").as_deref(),
            Some("http://graph")
        );
        assert_eq!(
            env.var("TELEGRAM_BOT_TOKEN"),
            None,
            "telegram is not served"
        );
    }

    #[test]
    fn a_missing_key_is_named_and_no_value_is_shown() {
        let secret = r#"{"WHATSAPP_APP_SECRET": "s3cr3t", "WHATSAPP_VERIFY_TOKEN": "v"}"#;
        let env = Vars(BTreeMap::new());
        let Err(e) = WithSecret::new(env, &whatsapp_only(), secret) else {
            panic!("accepted a secret without the access token");
        };
        let message = e.to_string();
        assert!(message.contains("WHATSAPP_ACCESS_TOKEN"), "{message}");
        assert!(!message.contains("s3cr3t"), "{message}");
        let Err(e) = WithSecret::new(Vars(BTreeMap::new()), &whatsapp_only(), "[1, 2]") else {
            panic!("accepted a secret that is not an object");
        };
        assert!(e.to_string().contains("JSON object"), "{e}");
    }

    #[test]
    fn the_channel_list_is_checked_and_no_secret_means_the_environment() {
        let env = Vars(BTreeMap::from([
            (SECRET_VAR, "assent/channels"),
            (CHANNELS_VAR, "whatsapp,,telegram"),
        ]));
        let found = source(&env).unwrap().unwrap();
        assert_eq!(found.channels, vec!["whatsapp", "telegram"]);
        let env = Vars(BTreeMap::from([
            (SECRET_VAR, "assent/channels"),
            (CHANNELS_VAR, "whatsapp,fax"),
        ]));
        let Err(e) = source(&env) else {
            panic!("accepted an unknown channel");
        };
        assert!(e.to_string().contains("fax"), "{e}");
        let env = Vars(BTreeMap::from([("WHATSAPP_APP_SECRET", "a")]));
        assert!(source(&env).unwrap().is_none());
        let env = WithSecret::without(env);
        assert_eq!(env.var("WHATSAPP_APP_SECRET").as_deref(), Some("a"));
    }
}

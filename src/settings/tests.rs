use super::*;

fn env(pairs: &[(&str, &str)]) -> Vec<(OsString, OsString)> {
    pairs.iter().map(|(k, v)| (k.into(), v.into())).collect()
}

#[test]
fn embedded_defaults_give_a_runnable_service() {
    let loaded = Settings::load(None, env(&[]), Layer::default()).unwrap();
    let s = loaded.settings;
    assert_eq!(s.grpc_addr, "127.0.0.1:50051".parse().unwrap());
    assert_eq!(s.http_addr, "0.0.0.0:8080".parse().unwrap());
    assert_eq!(s.line_api_base.as_str(), "https://api.line.me/");
    assert_eq!(s.webhook_body_limit, 1024 * 1024);
    assert_eq!(
        s.store_cache_bytes,
        crate::store::sled_store::DEFAULT_CACHE_BYTES
    );
    assert_eq!(s.log_format, LogFormat::Text);
    assert!(s.api_keys.is_empty() && s.master_key.is_none());
    assert!(loaded.warnings.is_empty());
}

#[test]
fn api_keys_open_the_grpc_port_to_all_interfaces() {
    let s = Settings::load(
        None,
        env(&[("LINE_ADAPTER_API_KEYS", "k1,,k2")]),
        Layer::default(),
    )
    .unwrap()
    .settings;
    assert_eq!(s.grpc_addr, "0.0.0.0:50051".parse().unwrap());
    assert_eq!(s.api_keys.len(), 2);
}

#[test]
fn flags_beat_env_and_env_beats_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c.toml");
    std::fs::write(
        &file,
        "http_addr = \"127.0.0.1:1\"\ndata_dir = \"/from/file\"\nlog_format = \"json\"\n",
    )
    .unwrap();
    let flags = Layer {
        http_addr: Some("127.0.0.1:3".into()),
        ..Layer::default()
    };
    let s = Settings::load(
        Some(&file),
        env(&[
            ("LINE_ADAPTER_HTTP_ADDR", "127.0.0.1:2"),
            ("LINE_ADAPTER_DATA_DIR", "/from/env"),
        ]),
        flags,
    )
    .unwrap()
    .settings;
    assert_eq!(s.http_addr, "127.0.0.1:3".parse().unwrap());
    assert_eq!(s.data_dir, PathBuf::from("/from/env"));
    assert_eq!(s.log_format, LogFormat::Json);
}

#[test]
fn bad_values_name_the_setting_and_its_origin() {
    let err = Settings::load(
        None,
        env(&[("LINE_ADAPTER_GRPC_ADDR", "nowhere")]),
        Layer::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("grpc_addr") && err.contains("LINE_ADAPTER_GRPC_ADDR"),
        "{err}"
    );

    let err = Settings::load(
        None,
        env(&[("LINE_ADAPTER_WEBHOOK_BODY_LIMIT", "lots")]),
        Layer::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("webhook_body_limit"), "{err}");

    let err = Settings::load(
        None,
        env(&[("LINE_ADAPTER_STORE_CACHE_MIB", "8")]),
        Layer::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("store_cache_mib") && err.contains("16–65536"),
        "{err}"
    );

    let err = Settings::load(
        None,
        env(&[("LINE_ADAPTER_MASTER_KEY", "short")]),
        Layer::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("master_key") && !err.contains("short"),
        "{err}"
    );

    let flags = Layer {
        public_base_url: Some("ftp://x".into()),
        ..Layer::default()
    };
    let err = Settings::load(None, env(&[]), flags)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("public_base_url") && err.contains("--public-base-url"),
        "{err}"
    );
}

#[test]
fn unknown_file_keys_and_unknown_env_vars_are_both_errors() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c.toml");
    std::fs::write(&file, "grpc_adr = \"127.0.0.1:1\"\n").unwrap();
    let err = Settings::load(Some(&file), env(&[]), Layer::default()).unwrap_err();
    assert!(err.to_string().contains("grpc_adr"), "{err}");

    let err = Settings::load(
        None,
        env(&[("LINE_ADAPTER_PUBLIC_BASEURL", "https://x.example")]),
        Layer::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("LINE_ADAPTER_PUBLIC_BASEURL"), "{err}");
    assert!(
        err.contains("did you mean LINE_ADAPTER_PUBLIC_BASE_URL?"),
        "{err}"
    );
    let far = Settings::load(None, env(&[("LINE_ADAPTER_NOPE", "1")]), Layer::default())
        .unwrap_err()
        .to_string();
    assert!(!far.contains("did you mean"), "{far}");
    // tail's key is a client's variable, not a server setting.
    assert!(
        Settings::load(
            None,
            env(&[("LINE_ADAPTER_API_KEY", "k")]),
            Layer::default()
        )
        .is_ok()
    );
    // Kubernetes' service links for Services named line-adapter-grpc
    // and line-adapter-http are not ours either.
    let links = [
        ("LINE_ADAPTER_GRPC_SERVICE_HOST", "10.0.0.1"),
        ("LINE_ADAPTER_GRPC_SERVICE_PORT", "50051"),
        ("LINE_ADAPTER_GRPC_SERVICE_PORT_GRPC", "50051"),
        ("LINE_ADAPTER_HTTP_PORT", "tcp://10.0.0.2:8080"),
        ("LINE_ADAPTER_HTTP_PORT_8080_TCP", "tcp://10.0.0.2:8080"),
        ("LINE_ADAPTER_HTTP_PORT_8080_TCP_ADDR", "10.0.0.2"),
        ("LINE_ADAPTER_HTTP_PORT_8080_TCP_PORT", "8080"),
        ("LINE_ADAPTER_HTTP_PORT_8080_TCP_PROTO", "tcp"),
    ];
    let loaded = Settings::load(None, env(&links), Layer::default()).unwrap();
    assert_eq!(
        loaded.settings.http_addr.port(),
        8080,
        "links change nothing"
    );
}

#[test]
fn line_rate_limits_default_to_lines_and_are_checked_where_they_come_from() {
    use crate::line::pace::{Endpoint, Per, Rate, RateLimits};
    let defaults = Settings::load(None, env(&[]), Layer::default()).unwrap();
    assert_eq!(defaults.settings.line_rate_limits, RateLimits::default());
    let s = Settings::load(
        None,
        env(&[("LINE_ADAPTER_LINE_RATE_LIMITS", "push=50/s,broadcast=30/h")]),
        Layer::default(),
    )
    .unwrap()
    .settings;
    assert_eq!(
        s.line_rate_limits.rate(Endpoint::Push),
        Rate::new(50, Per::Second)
    );
    assert_eq!(
        s.line_rate_limits.rate(Endpoint::Broadcast),
        Rate::new(30, Per::Hour)
    );
    assert_eq!(
        s.line_rate_limits.rate(Endpoint::Multicast),
        Endpoint::Multicast.line_rate()
    );

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c.toml");
    std::fs::write(&file, "line_rate_limits = \"push=50/sec\"\n").unwrap();
    let err = Settings::load(Some(&file), env(&[]), Layer::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("invalid setting `line_rate_limits` (from config file")
            && err.contains(
                "`push=50/sec`: a rate is a whole number of requests per `s`, `min` or `h`"
            ),
        "{err}"
    );
    std::fs::write(&file, "line_rate_limits = 50\n").unwrap();
    let err = Settings::load(Some(&file), env(&[]), Layer::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("line_rate_limits"), "{err}");
}

#[test]
fn base_urls_lose_a_trailing_slash_after_a_path() {
    let base = |text: &str| {
        let flags = Layer {
            public_base_url: Some(text.into()),
            ..Layer::default()
        };
        let settings = Settings::load(None, env(&[]), flags).unwrap().settings;
        settings.public_base_url.unwrap().as_str().to_owned()
    };
    assert_eq!(
        base("https://line.example.com/hooks/"),
        "https://line.example.com/hooks"
    );
    assert_eq!(
        base("https://line.example.com/hooks"),
        "https://line.example.com/hooks"
    );
    assert_eq!(
        base("https://line.example.com"),
        "https://line.example.com/"
    );
}

#[test]
fn errors_never_quote_secrets_or_urls() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c.toml");
    std::fs::write(&file, "api_keys = 12\nmaster_key = \"tooshort-secret\"\n").unwrap();
    let err = Settings::load(Some(&file), env(&[]), Layer::default()).unwrap_err();
    assert!(err.to_string().contains("api_keys"), "{err}");

    std::fs::write(&file, "master_key = \"tooshort-secret\"\n").unwrap();
    let err = Settings::load(Some(&file), env(&[]), Layer::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("master_key") && !err.contains("tooshort-secret"),
        "{err}"
    );

    let flags = Layer {
        line_api_base: Some("ftp://user:hunter2@example.com".into()),
        ..Layer::default()
    };
    let err = Settings::load(None, env(&[]), flags)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("line_api_base") && !err.contains("hunter2"),
        "{err}"
    );
}

#[test]
fn api_keys_come_as_a_list_or_a_joined_string_and_stay_hidden() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c.toml");
    std::fs::write(&file, "api_keys = [\"key-a\", \"key-b\", \"key-a\"]\n").unwrap();
    let s = Settings::load(Some(&file), env(&[]), Layer::default())
        .unwrap()
        .settings;
    assert_eq!(s.api_keys.len(), 2, "duplicates collapse");
    assert!(!format!("{s:?}").contains("key-a"));
    std::fs::write(&file, "api_keys = \"key-a,key-c\"\n").unwrap();
    let s = Settings::load(Some(&file), env(&[]), Layer::default())
        .unwrap()
        .settings;
    assert_eq!(s.api_keys.len(), 2);
}

#[test]
fn an_open_grpc_port_needs_keys_or_an_explicit_opt_out() {
    let open = || Layer {
        grpc_addr: Some("0.0.0.0:50051".into()),
        ..Layer::default()
    };
    let err = Settings::load(None, env(&[]), open())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("grpc_addr") && err.contains("--insecure-no-auth"),
        "{err}"
    );
    let insecure = Layer {
        insecure_no_auth: Some(true),
        ..open()
    };
    assert!(Settings::load(None, env(&[]), insecure).is_ok());
    assert!(Settings::load(None, env(&[("LINE_ADAPTER_API_KEYS", "k")]), open()).is_ok());
    let loopback = Layer {
        grpc_addr: Some("[::1]:50051".into()),
        ..Layer::default()
    };
    assert!(Settings::load(None, env(&[]), loopback).is_ok());
}

#[test]
fn foreign_variables_may_be_anything_ours_must_be_text() {
    use std::os::unix::ffi::OsStringExt as _;
    let junk = OsString::from_vec(vec![0xff, 0xfe]);
    let vars = vec![(OsString::from("OTHER"), junk.clone())];
    assert!(Settings::load(None, vars, Layer::default()).is_ok());
    let vars = vec![(OsString::from("LINE_ADAPTER_DATA_DIR"), junk)];
    let err = Settings::load(None, vars, Layer::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("LINE_ADAPTER_DATA_DIR"), "{err}");
}

/// The flags of `serve` as clap parses them into a layer.
fn flags(args: &[&str]) -> Result<Layer, clap::Error> {
    use clap::{Args as _, FromArgMatches as _};
    let command = Layer::augment_args(clap::Command::new("serve"));
    let matches =
        command.try_get_matches_from(std::iter::once("serve").chain(args.iter().copied()))?;
    Layer::from_arg_matches(&matches)
}

#[test]
fn flags_set_only_what_is_given_and_numbers_are_refused_in_words() {
    let none = flags(&[]).unwrap();
    assert_eq!(none.insecure_no_auth, None, "absent leaves the env's value");
    assert_eq!(none.lookup_profiles, None);
    let some = flags(&["--insecure-no-auth", "--webhook-body-limit", "2048"]).unwrap();
    assert_eq!(some.insecure_no_auth, Some(true));
    assert_eq!(some.webhook_body_limit, Some(2048));
    let err = flags(&["--webhook-body-limit", "-1"])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("`-1` is not a whole number (0 or more)"),
        "{err}"
    );
}

#[test]
fn every_flag_shows_its_variable_and_secrets_are_not_flags() {
    use clap::Args as _;
    let mut command = Layer::augment_args(clap::Command::new("serve"));
    let help = command.render_long_help().to_string();
    let mut flags = 0;
    for arg in command.get_arguments().filter(|arg| arg.get_id() != "help") {
        let key = arg.get_id().as_str();
        assert!(
            help.contains(&format!("[env: {}]", env_var_name(key))),
            "--{key} does not name its variable:\n{help}"
        );
        flags += 1;
    }
    assert!(flags > 20, "{help}");
    for secret in [
        "api_keys",
        "master_key",
        "master_key_previous",
        "store",
        "nats_url",
    ] {
        assert!(
            command.get_arguments().all(|arg| arg.get_id() != secret),
            "{secret} is a flag"
        );
    }
    assert!(help.contains("[default: 0.0.0.0:8080]"), "{help}");
}

#[test]
fn variables_are_read_by_type_in_the_users_words() {
    let load = |pairs: &[(&str, &str)]| Settings::load(None, env(pairs), Layer::default());
    let s = load(&[
        ("LINE_ADAPTER_LOOKUP_PROFILES", ""),
        ("LINE_ADAPTER_INSECURE_NO_AUTH", "yes"),
        ("LINE_ADAPTER_GRPC_ADDR", "0.0.0.0:1"),
        ("LINE_ADAPTER_WEBHOOK_BODY_LIMIT", " 2048 "),
    ])
    .unwrap()
    .settings;
    assert!(!s.lookup_profiles, "empty is false");
    assert!(s.insecure_no_auth);
    assert_eq!(s.webhook_body_limit, 2048);

    let err = load(&[("LINE_ADAPTER_LOOKUP_PROFILES", "maybe")])
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "invalid setting `lookup_profiles` (from environment variable LINE_ADAPTER_LOOKUP_PROFILES): `maybe` is not true or false"
    );
    // `store` is set too and sorts first: the error still names the
    // variable that is wrong.
    let err = load(&[
        ("LINE_ADAPTER_STORE", "sled"),
        ("LINE_ADAPTER_STORE_CACHE_MIB", "abc"),
    ])
    .unwrap_err()
    .to_string();
    assert_eq!(
        err,
        "invalid setting `store_cache_mib` (from environment variable LINE_ADAPTER_STORE_CACHE_MIB): `abc` is not a whole number"
    );
}

/// The README's Settings table lists every setting, and marks "Not a flag"
/// exactly those `Layer` skips.
#[test]
fn the_readme_table_names_every_setting_and_its_flag() {
    use clap::Args as _;
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md is readable");
    let (_, table) = readme
        .split_once("| Setting | Default | Meaning |")
        .expect("the Settings table");
    let command = Layer::augment_args(clap::Command::new("serve"));
    let mut listed = Vec::new();
    for row in table
        .lines()
        .skip(2)
        .take_while(|line| line.starts_with('|'))
    {
        let keys = row.split('|').nth(1).unwrap_or_default();
        for key in keys.split(',').map(|k| k.trim().trim_matches('`')) {
            let is_flag = command.get_arguments().any(|arg| arg.get_id() == key);
            assert_eq!(
                is_flag,
                !row.contains("Not a flag"),
                "README's row of `{key}` and Layer disagree on its flag"
            );
            listed.push(key.to_owned());
        }
    }
    for key in Layer::keys() {
        assert!(
            listed.iter().any(|k| k == key),
            "`{key}` is not in the README's table"
        );
    }
}

use proptest::prelude::*;

use super::*;

fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn err(text: &str, pairs: &[(&str, &str)]) -> String {
    Config::from_parts("conf.toml", text, &vars(pairs))
        .unwrap_err()
        .to_string()
}

#[test]
fn shipped_file_equals_builtin_defaults() {
    let cfg = Config::from_parts("config/dispatch.toml", STARTER_CONFIG, &vars(&[])).unwrap();
    assert_eq!(cfg, Config::default());
}

#[test]
fn values_arrive_typed() {
    let cfg = Config::from_parts(
        "x.toml",
        "[publication]\nurl = \"https://ledger.example.pk/\"\n\
         from = \"Ledger <Digest@Ledger.Example.PK>\"\nreply_to = \"Letters <letters@ledger.example.pk>\"\n\
         [web]\nbind = \"0.0.0.0:9000\"\npublic_url = \"https://lists.ledger.example.pk\"\n\
         max_connections = 3\nheader_timeout_secs = 2\n\
         [schedule]\nmax_lateness = \"90m\"\n[log]\nlevel = \"warn,dispatch=debug\"\n",
        &vars(&[]),
    )
    .unwrap();
    assert_eq!(cfg.publication.url.base(), "https://ledger.example.pk");
    assert_eq!(
        cfg.publication.from.address().as_str(),
        "Digest@ledger.example.pk"
    );
    assert_eq!(
        cfg.publication.from.mailbox().name.as_deref(),
        Some("Ledger")
    );
    let reply_to = cfg.publication.reply_to.as_ref().unwrap();
    assert_eq!(reply_to.email.to_string(), "letters@ledger.example.pk");
    assert_eq!(cfg.web.bind, SocketAddr::from(([0, 0, 0, 0], 9000)));
    assert_eq!(cfg.web.public_url.host(), "lists.ledger.example.pk");
    assert_eq!(
        (cfg.web.max_connections, cfg.web.header_timeout_secs),
        (3, 2)
    );
    assert_eq!(cfg.web.request_timeout_secs, 30);
    assert_eq!(
        cfg.schedule.max_lateness.to_chrono(),
        chrono::Duration::minutes(90)
    );
    assert_eq!(cfg.log.level.as_str(), "warn,dispatch=debug");
    // A bare reply-to address is still a mailbox.
    let cfg = Config::from_parts(
        "x.toml",
        "[publication]\nreply_to = \"letters@news.example.com\"\n",
        &vars(&[]),
    )
    .unwrap();
    assert_eq!(cfg.publication.reply_to.unwrap().name, None);
}

#[test]
fn env_overrides_with_types() {
    let cfg = Config::from_parts(
        "x.toml",
        "",
        &vars(&[
            ("DISPATCH_SMTP_PASSWORD", "hunter2"),
            ("DISPATCH_SMTP_USERNAME", "mailer"),
            ("DISPATCH_SMTP_TIMEOUT_SECS", "7"),
            ("DISPATCH_DATABASE_PATH", "/tmp/x.db"),
            ("DISPATCH_DIGEST_REPEAT_BREAKING", "false"),
            ("DISPATCH_SCHEDULE_MAX_LATENESS", "2d"),
            ("DISPATCH_WEB_BIND", "127.0.0.1:9999"),
            ("DISPATCH_PUBLICATION_REPLY_TO", "letters@news.example.com"),
            ("DISPATCH_REQUIRE_TOOLS", "1"),
            ("DISPATCH_FUZZ_SECS", "60"),
        ]),
    )
    .unwrap();
    assert_eq!(cfg.smtp.timeout_secs, 7);
    assert_eq!(cfg.database.path, PathBuf::from("/tmp/x.db"));
    assert!(!cfg.digest.repeat_breaking);
    assert_eq!(cfg.schedule.max_lateness.secs(), 2 * 86_400);
    assert_eq!(cfg.web.bind.port(), 9999);
    assert!(cfg.publication.reply_to.is_some());
    assert_eq!(cfg.smtp.password.as_ref().unwrap().expose(), "hunter2");
    let dbg = format!("{cfg:?}");
    assert!(!dbg.contains("hunter2"), "secret leaked in Debug");
}

#[test]
fn a_serialised_config_reads_back_the_same_without_its_password() {
    let mut cfg = Config::default();
    cfg.publication.reply_to = Some("Letters <letters@news.example.com>".parse().unwrap());
    cfg.smtp.username = Some("mailer".into());
    cfg.smtp.password = Some(Secret::new("hunter2"));
    cfg.schedule.max_lateness = parse_duration("90m").unwrap();
    let text = toml::to_string(&cfg).unwrap();
    assert!(!text.contains("hunter2"), "secret serialised:\n{text}");
    assert!(text.contains("max_lateness = \"90m\""), "{text}");
    let back = Config::from_parts("serialised", &text, &vars(&[])).unwrap();
    assert_eq!(back.smtp.password.as_ref().unwrap().expose(), "[redacted]");
    let mut without_password = back;
    without_password.smtp.password = cfg.smtp.password.clone();
    assert_eq!(without_password, cfg);
}

#[test]
fn errors_name_file_key_and_expectation() {
    let e = err("[smtp]\nport = \"x\"\n", &[]);
    assert!(
        e.contains("conf.toml") && e.contains("[smtp] port") && e.contains("line 2"),
        "{e}"
    );
    let e = err("[smtp]\nprot = 25\n", &[]);
    assert!(e.contains("prot") && e.contains("line 2"), "{e}");
    let e = err("[web]\npublic_url = \"ftp://x\"\n", &[]);
    assert!(
        e.contains("[web] public_url") && e.contains("ftp://x"),
        "{e}"
    );
    let e = err("[web]\nbind = \"localhost\"\n", &[]);
    assert!(
        e.contains("[web] bind") && e.contains("ADDRESS:PORT"),
        "{e}"
    );
    let e = err(
        "[web]\nbind = \"0.0.0.0:8080\"\n[console]\nbind = \"0.0.0.0:8080\"\n",
        &[],
    );
    assert!(
        e.contains("[console] bind") && e.contains("[web] bind's address too"),
        "{e}"
    );
    let e = err("[publication]\nfrom = \"Ledger\"\n", &[]);
    assert!(
        e.contains("[publication] from") && e.contains("mailbox"),
        "{e}"
    );
    let e = err("[publication]\nreply_to = \"letters@localhost\"\n", &[]);
    assert!(e.contains("[publication] reply_to"), "{e}");
    let e = err("[schedule]\nmax_lateness = \"soon\"\n", &[]);
    assert!(
        e.contains("[schedule] max_lateness") && e.contains("90s"),
        "{e}"
    );
    let e = err("[log]\nlevel = \"dispatch=loud\"\n", &[]);
    assert!(e.contains("[log] level"), "{e}");
    let e = err("[smtp\n", &[]);
    assert!(e.contains("conf.toml") && e.contains("line 1"), "{e}");

    let e = err("", &[("DISPATCH_SMTP_PORT", "many")]);
    assert!(
        e.contains("DISPATCH_SMTP_PORT") && e.contains("whole number") && e.contains("1-65535"),
        "{e}"
    );
    let e = err("", &[("DISPATCH_SMTP_COLOUR", "red")]);
    assert!(e.contains("DISPATCH_SMTP_COLOUR"), "{e}");
    let e = err("", &[("DISPATCH_WEB_PUBLIC_URL", "news.example.pk")]);
    assert!(
        e.contains("environment variable DISPATCH_WEB_PUBLIC_URL")
            && e.contains("[web] public_url")
            && e.contains("news.example.pk"),
        "{e}"
    );
    let e = err("", &[("DISPATCH_SMTP_USERNAME", "mailer")]);
    assert!(e.contains("username and password"), "{e}");
}

/// The defaults' settings, with nested sections dotted (`bounces.imap`): (section, key, value).
fn default_settings() -> Vec<(String, String, toml::Value)> {
    fn walk(prefix: &str, t: &toml::Table, out: &mut Vec<(String, String, toml::Value)>) {
        for (k, v) in t {
            match v.as_table() {
                Some(inner) if !prefix.is_empty() => walk(&format!("{prefix}.{k}"), inner, out),
                Some(inner) => walk(k, inner, out),
                None => out.push((prefix.to_owned(), k.clone(), v.clone())),
            }
        }
    }
    let mut out = Vec::new();
    walk(
        "",
        &toml::Table::try_from(Config::default()).unwrap(),
        &mut out,
    );
    out
}

/// Every integer or duration in the defaults has a bound, and every bound is a real key.
#[test]
fn every_numeric_setting_has_a_bound() {
    let settings = default_settings();
    for (section, key, value) in &settings {
        let numeric = value.is_integer() || (section == "schedule" && key == "max_lateness");
        assert_eq!(
            numeric,
            bounds::of(section, key).is_some(),
            "[{section}] {key}: numeric settings need a bound, others none"
        );
    }
    for b in bounds::BOUNDS {
        assert!(
            settings
                .iter()
                .any(|(s, k, _)| s == b.section && k == b.key),
            "{}",
            b.key
        );
    }
}

/// The comments of `config/dispatch.toml` state each key's range as the loader checks it.
#[test]
fn the_shipped_file_documents_every_range() {
    for b in bounds::BOUNDS {
        let lines: Vec<&str> = STARTER_CONFIG.lines().collect();
        let section = lines
            .iter()
            .position(|l| *l == format!("[{}]", b.section))
            .unwrap_or_else(|| panic!("no [{}] in the shipped file", b.section));
        let at = lines[section..]
            .iter()
            .position(|l| l.starts_with(&format!("{} = ", b.key)))
            .map(|i| section + i)
            .unwrap_or_else(|| panic!("no {} in [{}]", b.key, b.section));
        let comment: String = lines[..at]
            .iter()
            .rev()
            .take_while(|l| l.starts_with('#'))
            .copied()
            .collect::<Vec<_>>()
            .join(" ");
        assert!(
            comment.contains(&format!("Range: {}", b.range())),
            "[{}] {}: the comment above it should say \"Range: {}\"; it says {comment:?}",
            b.section,
            b.key,
            b.range()
        );
    }
}

/// The text of value `n` for bound `b`, as the file and the environment write it.
fn text_of(b: &bounds::Bound, n: u128) -> String {
    match b.unit {
        bounds::Unit::Number => n.to_string(),
        bounds::Unit::Duration => format!("{n}s"),
    }
}

fn file_with(b: &bounds::Bound, value: &str) -> String {
    let value = match b.unit {
        bounds::Unit::Number => value.to_owned(),
        bounds::Unit::Duration => format!("{value:?}"),
    };
    format!("[{}]\n{} = {value}\n", b.section, b.key)
}

fn var_of(b: &bounds::Bound) -> String {
    format!("DISPATCH_{}_{}", b.section, b.key)
        .replace('.', "_")
        .to_uppercase()
}

#[test]
fn each_bound_is_accepted_and_one_past_it_is_an_error_naming_the_key() {
    for b in bounds::BOUNDS {
        let name = format!("[{}] {}", b.section, b.key);
        for ok in [b.min, b.max] {
            let value = text_of(b, u128::from(ok));
            Config::from_parts("conf.toml", &file_with(b, &value), &vars(&[]))
                .unwrap_or_else(|e| panic!("{name} = {value} refused: {e}"));
            Config::from_parts("conf.toml", "", &vars(&[(&var_of(b), &value)]))
                .unwrap_or_else(|e| panic!("{} = {value} refused: {e}", var_of(b)));
        }
        let mut past = vec![u128::from(b.max) + 1];
        if b.min > 0 {
            past.push(u128::from(b.min) - 1);
        }
        for bad in past {
            let value = text_of(b, bad);
            let e = err(&file_with(b, &value), &[]);
            assert!(
                e.contains("conf.toml") && e.contains(&name) && e.contains(&b.range()),
                "{name} = {value}: {e}"
            );
            let var = var_of(b);
            let e = err("", &[(&var, &value)]);
            assert!(
                e.contains(&format!("environment variable {var}"))
                    && e.contains(&name)
                    && e.contains(&b.range()),
                "{var} = {value}: {e}"
            );
        }
    }
}

#[test]
fn bounces_settings_arrive_typed_and_nested_env_vars_reach_them() {
    let cfg = Config::from_parts(
        "x.toml",
        "[bounces]\nreturn_path_domain = \"Bounces.News.Example.COM.\"\nsoft_threshold = 3\n\
         [bounces.imap]\nhost = \"imap.example.com\"\nusername = \"b\"\n",
        &vars(&[
            ("DISPATCH_BOUNCES_IMAP_PASSWORD", "hunter2"),
            ("DISPATCH_BOUNCES_IMAP_POLL_SECS", "7"),
            ("DISPATCH_BOUNCES_IMAP_SECURITY", "starttls"),
        ]),
    )
    .unwrap();
    assert_eq!(
        cfg.bounces.return_path_domain.as_ref().unwrap().as_str(),
        "bounces.news.example.com"
    );
    assert_eq!(cfg.bounces.soft_threshold, 3);
    assert_eq!(cfg.bounces.hard_threshold, 1);
    assert_eq!(cfg.bounces.imap.poll_secs, 7);
    assert_eq!(cfg.bounces.imap.security, ImapSecurity::Starttls);
    assert_eq!(
        cfg.bounces.imap.password.as_ref().unwrap().expose(),
        "hunter2"
    );
    assert!(!format!("{cfg:?}").contains("hunter2"));

    let e = err("[bounces.imap]\npoll_secs = 1\n", &[]);
    assert!(
        e.contains("[bounces.imap] poll_secs") && e.contains("5-86400"),
        "{e}"
    );
    let e = err("", &[("DISPATCH_BOUNCES_IMAP_PORT", "0")]);
    assert!(
        e.contains("environment variable DISPATCH_BOUNCES_IMAP_PORT")
            && e.contains("[bounces.imap] port"),
        "{e}"
    );
    let e = err("[bounces.imap]\nhost = \"imap.example.com\"\n", &[]);
    assert!(e.contains("[bounces.imap] username and password"), "{e}");
    let e = err("[bounces]\nreturn_path_domain = \"not a domain\"\n", &[]);
    assert!(
        e.contains("[bounces] return_path_domain") && e.contains("line 2"),
        "{e}"
    );
}

#[test]
fn the_old_bounce_threshold_still_sets_the_hard_threshold_with_a_notice() {
    let cfg =
        Config::from_parts("x.toml", "[sending]\nbounce_threshold = 4\n", &vars(&[])).unwrap();
    assert_eq!(cfg.bounces.hard_threshold, 4);
    assert!(
        cfg.notices[0].contains("[bounces] hard_threshold"),
        "{:?}",
        cfg.notices
    );
    let cfg = Config::from_parts(
        "x.toml",
        "",
        &vars(&[("DISPATCH_SENDING_BOUNCE_THRESHOLD", "2")]),
    )
    .unwrap();
    assert_eq!(cfg.bounces.hard_threshold, 2);
    let e = err(
        "[sending]\nbounce_threshold = 4\n[bounces]\nhard_threshold = 2\n",
        &[],
    );
    assert!(
        e.contains("[sending] bounce_threshold") && e.contains("old name"),
        "{e}"
    );
    // Written back, only the new name appears.
    let text = toml::to_string(&cfg).unwrap();
    assert!(
        !text.contains("bounce_threshold") && text.contains("hard_threshold = 2"),
        "{text}"
    );
}

/// The three values of issue 11 that used to validate and then panic later.
#[test]
fn values_that_used_to_panic_later_are_refused_at_load() {
    let cases = [
        (
            "schedule",
            "max_lateness",
            "\"99999999999999d\"",
            "99999999999999d",
        ),
        ("digest", "first_window_hours", "4294967295", "4294967295"),
        (
            "sending",
            "lease_secs",
            "9223372036854775807",
            "9223372036854775807",
        ),
        (
            "sending",
            "lease_secs",
            "18446744073709551616",
            "18446744073709551616",
        ),
    ];
    for (section, key, in_file, in_env) in cases {
        let name = format!("[{section}] {key}");
        let e = err(&format!("[{section}]\n{key} = {in_file}\n"), &[]);
        assert!(e.contains(&name), "{name}: {e}");
        let var = format!("DISPATCH_{section}_{key}").to_uppercase();
        let e = err("", &[(&var, in_env)]);
        assert!(e.contains(&name) && e.contains(&var), "{var}: {e}");
    }
}

/// Every key the file may hold: (section, key), nested sections dotted.
fn all_keys() -> Vec<(String, String)> {
    let mut keys: Vec<(String, String)> = default_settings()
        .into_iter()
        .map(|(s, k, _)| (s, k))
        .collect();
    for k in env::OPTIONAL_STRING_KEYS {
        let (s, k) = k.rsplit_once('.').unwrap();
        keys.push((s.into(), k.into()));
    }
    keys
}

fn any_value() -> impl Strategy<Value = toml::Value> {
    let unit = prop_oneof![
        Just(""),
        Just("s"),
        Just("m"),
        Just("h"),
        Just("d"),
        Just("w")
    ];
    prop_oneof![
        any::<i64>().prop_map(toml::Value::Integer),
        prop_oneof![
            Just(0i64),
            Just(-1),
            Just(i64::MAX),
            Just(i64::MIN),
            Just(i64::from(u32::MAX)),
            Just(i64::from(u32::MAX) + 1),
            Just(65_536),
        ]
        .prop_map(toml::Value::Integer),
        any::<String>().prop_map(toml::Value::String),
        (any::<u64>(), unit).prop_map(|(n, u)| toml::Value::String(format!("{n}{u}"))),
        "[0-9]{0,30}[smhdw]?".prop_map(toml::Value::String),
        "[a-z ]{0,10}<[a-z@.]{0,20}>".prop_map(toml::Value::String),
        "(https?|ftp)://[a-z.:@/0-9]{0,20}".prop_map(toml::Value::String),
        "[0-9.:\\[\\]a-f]{0,30}".prop_map(toml::Value::String),
        "[a-z=,:]{0,20}".prop_map(toml::Value::String),
        any::<bool>().prop_map(toml::Value::Boolean),
        any::<f64>().prop_map(toml::Value::Float),
        proptest::collection::vec(any::<String>(), 0..4)
            .prop_map(|v| toml::Value::Array(v.into_iter().map(toml::Value::String).collect())),
    ]
}

/// `value` as text in a `DISPATCH_*` variable.
fn env_text(value: toml::Value) -> String {
    match value {
        toml::Value::String(s) => s,
        other => other.to_string(),
    }
}

/// A file setting `[section] key = value` for each pick.
fn file_of(picks: &[(&(String, String), toml::Value)]) -> String {
    let mut doc = toml::Table::new();
    for ((section, key), value) in picks {
        let mut at = &mut doc;
        for name in section.split('.') {
            let toml::Value::Table(t) = at
                .entry(name.to_owned())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()))
            else {
                unreachable!("only tables are inserted here")
            };
            at = t;
        }
        at.insert(key.clone(), value.clone());
    }
    toml::to_string(&doc).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// No value of any key makes loading panic, from the file or from the environment: every
    /// generated value is tried in every key.
    #[test]
    fn no_value_of_any_key_makes_loading_panic(value in any_value()) {
        for key in &all_keys() {
            let text = file_of(&[(key, value.clone())]);
            let _ = Config::from_parts("fuzz.toml", &text, &BTreeMap::new());
            let var = format!("DISPATCH_{}_{}", key.0, key.1).replace('.', "_").to_uppercase();
            let env_vars = BTreeMap::from([(var, env_text(value.clone()))]);
            let _ = Config::from_parts("fuzz.toml", "", &env_vars);
        }
    }

    /// Nor does any mix of several keys in the file with one in the environment.
    #[test]
    fn no_mix_of_values_makes_loading_panic(
        picks in proptest::collection::vec((any::<prop::sample::Index>(), any_value()), 1..6),
        env_pick in proptest::option::of((any::<prop::sample::Index>(), any_value())),
    ) {
        let keys = all_keys();
        let picks: Vec<_> = picks.into_iter().map(|(i, v)| (i.get(&keys), v)).collect();
        let mut env_vars = BTreeMap::new();
        if let Some((i, value)) = env_pick {
            let (s, k) = i.get(&keys);
            env_vars.insert(format!("DISPATCH_{s}_{k}").replace('.', "_").to_uppercase(), env_text(value));
        }
        let _ = Config::from_parts("fuzz.toml", &file_of(&picks), &env_vars);
    }
}

/// The shipped file's commented `[[feeds]]` example, uncommented.
fn shipped_feed_example() -> String {
    let lines: Vec<&str> = STARTER_CONFIG.lines().collect();
    let start = lines.iter().position(|l| *l == "# [[feeds]]").unwrap();
    lines[start..]
        .iter()
        .take_while(|l| l.starts_with('#'))
        .filter_map(|l| l.strip_prefix("# "))
        .filter(|l| l.starts_with('[') || l.contains(" = "))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn feeds_arrive_typed_from_the_shipped_example() {
    let text = shipped_feed_example();
    let cfg = Config::from_parts("x.toml", &text, &vars(&[])).unwrap();
    assert_eq!(cfg.feeds.len(), 1);
    let f = &cfg.feeds[0];
    assert_eq!(f.url.as_str(), "https://news.example.com/feed/");
    assert_eq!(f.poll_secs, 300);
    assert_eq!(f.language.as_deref(), Some("ur"));
    assert_eq!(f.category_map["Pakistan"].as_str(), "General News");
    // Defaults for everything but the URL.
    let cfg = Config::from_parts(
        "x.toml",
        "[[feeds]]\nurl = \"https://a.example.com/rss\"\n[[feeds]]\nurl = \"https://b.example.com/atom\"\npoll_secs = 30\n",
        &vars(&[]),
    )
    .unwrap();
    assert_eq!(
        cfg.feeds[0],
        Feed::new(WebUrl::parse("https://a.example.com/rss").unwrap())
    );
    assert_eq!(cfg.feeds[1].poll_secs, 30);
}

#[test]
fn bad_feeds_are_refused_naming_the_feed_and_key() {
    for (text, wants) in [
        (
            "[[feeds]]\nurl = \"https://a.example.com/\"\npoll_secs = 29\n",
            &["[feeds[1]] poll_secs", "30-86400"][..],
        ),
        (
            "[[feeds]]\nurl = \"https://a.example.com/\"\n[[feeds]]\nurl = \"https://b.example.com/\"\npoll_secs = 86401\n",
            &["[feeds[2]] poll_secs", "30-86400"],
        ),
        (
            "[[feeds]]\nurl = \"https://a.example.com/\"\n[[feeds]]\nurl = \"https://a.example.com/\"\n",
            &["[feeds[2]] url", "configured twice"],
        ),
        (
            "[[feeds]]\nurl = \"ftp://a.example.com/\"\n",
            &["url", "http"],
        ),
        ("[[feeds]]\npoll_secs = 60\n", &["url"]),
        (
            "[[feeds]]\nurl = \"https://a.example.com/\"\nlanguage = \"not a tag\"\n",
            &["[feeds[1]] language"],
        ),
        (
            "[[feeds]]\nurl = \"https://a.example.com/\"\n[feeds.category_map]\n\"x\" = \"a;b\"\n",
            &["category_map"],
        ),
        (
            "[[feeds]]\nurl = \"https://a.example.com/\"\nevery = 5\n",
            &["every"],
        ),
    ] {
        let e = err(text, &[]);
        for w in wants {
            assert!(e.contains(w), "{text:?}: {e}");
        }
    }
}

#[test]
fn the_shipped_file_documents_every_feed_range() {
    let text = shipped_feed_example();
    for b in bounds::FEED_BOUNDS {
        let lines: Vec<&str> = STARTER_CONFIG.lines().collect();
        let at = lines
            .iter()
            .position(|l| l.starts_with(&format!("# {} = ", b.key)))
            .unwrap_or_else(|| panic!("no {} in the [[feeds]] example", b.key));
        assert!(
            lines[at - 1].contains(&format!("Range: {}-{}.", b.min, b.max)),
            "[[feeds]] {}: {:?}",
            b.key,
            lines[at - 1]
        );
        assert!(text.contains(&format!("{} = ", b.key)));
    }
}

/// The shipped file's commented `[[sql_sources]]` example, uncommented.
fn shipped_source_example() -> String {
    let lines: Vec<&str> = STARTER_CONFIG.lines().collect();
    let start = lines
        .iter()
        .position(|l| *l == "# [[sql_sources]]")
        .unwrap();
    lines[start..]
        .iter()
        .take_while(|l| l.starts_with('#'))
        .filter_map(|l| l.strip_prefix("# "))
        .filter(|l| l.starts_with('[') || l.contains(" = ") && !l.starts_with("\"WHERE"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn sql_sources_arrive_typed_from_the_shipped_example_and_bad_ones_are_named() {
    let cfg = Config::from_parts("x.toml", &shipped_source_example(), &vars(&[])).unwrap();
    let s = &cfg.sql_sources[0];
    assert_eq!(s.path, PathBuf::from("/var/lib/cms/cms.db"));
    assert!(s.query.contains(":since"));
    assert_eq!(
        (s.poll_secs, s.default_category.as_str()),
        (60, "General News")
    );
    let lines: Vec<&str> = STARTER_CONFIG.lines().collect();
    let at = lines.iter().position(|l| *l == "# poll_secs = 60").unwrap();
    assert!(
        lines[at - 1].contains("Range: 10-86400."),
        "{}",
        lines[at - 1]
    );
    for (text, wants) in [
        (
            "[[sql_sources]]\npath = \"a.db\"\nquery = \"SELECT 1 WHERE x > :since\"\npoll_secs = 9\n",
            &["[sql_sources[1]] poll_secs", "10-86400"][..],
        ),
        (
            "[[sql_sources]]\npath = \"a.db\"\nquery = \"SELECT * FROM posts\"\n",
            &["[sql_sources[1]] query", ":since"],
        ),
        (
            "[[sql_sources]]\npath = \"a.db\"\nquery = \"x > :since\"\n[[sql_sources]]\npath = \"a.db\"\nquery = \"x > :since\"\n",
            &["[sql_sources[2]] path", "twice"],
        ),
        ("[[sql_sources]]\npath = \"a.db\"\n", &["query"]),
    ] {
        let e = err(text, &[]);
        for w in wants {
            assert!(e.contains(w), "{text:?}: {e}");
        }
    }
}
